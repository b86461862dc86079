"""Data-set sizes that configs are checked against, free of JAX (read by ``sdeml check``)."""

BREAST_CANCER_SIZE = 569  # examples in scikit-learn's breast cancer data set
