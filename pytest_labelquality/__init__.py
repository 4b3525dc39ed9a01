"""pytest-labelquality: a pytest plugin and CI gate for label quality (confident learning).

Importing this package is cheap: stdlib only. numpy, cleanlab, scikit-learn and TensorFlow are
imported inside the functions that need them.
"""

__version__ = "0.1.0"
