"""edgepipe: raw data to a verified TFLite bundle, as a cached DAG of typed components.

This is the one place that prepares the environment before TensorFlow is first imported: tfmot and TF-Agents need
Keras 2, so ``TF_USE_LEGACY_KERAS=1`` must be set before any ``import tensorflow``. Every module of the project
imports ``edgepipe`` first (it is the parent package), so importing anything from edgepipe guarantees it.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# TensorFlow's C++ logging is noise for pipeline users; the CLI's -v turns it back on.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
