"""TFX's Chicago taxi task as a pipeline of your own: is the tip more than 20% of the fare? (README "Your pipeline")."""
