"""target.energy_table prices are picojoules per operation/access: a negative or zero price made negative energies
that could "meet" an energy_uj budget; it is refused when the config loads (exit 2, naming the key)."""
import pytest

from edgepipe.pipeline.config import load_config
from edgepipe.pipeline.errors import ConfigError


@pytest.mark.parametrize("price", ["-5", "0"])
def test_a_price_not_above_zero_is_refused_naming_the_key(price):
    with pytest.raises(ConfigError, match=r"target.energy_table.sram_read_32bit: .* is not a price in pJ > 0"):
        load_config(None, [f"target.energy_table={{sram_read_32bit: {price}}}"])


def test_a_positive_price_is_kept():
    config = load_config(None, ["target.profile=cortex_m4", "target.energy_table={sram_read_32bit: 2.5}"])
    assert config.target.resolved()["energy_table"]["sram_read_32bit"] == 2.5
