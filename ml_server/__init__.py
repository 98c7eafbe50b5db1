"""The ML server: analysis API, workers, callback sender."""

import warnings

# resemblyzer imports webrtcvad, whose first line imports pkg_resources only to read its own
# version; setuptools warns about that on every start. Silenced for that module alone.
warnings.filterwarnings(
    "ignore", message="pkg_resources is deprecated", category=UserWarning, module="webrtcvad"
)
# resemblyzer's audio module imports binary_dilation from scipy's deprecated namespace.
warnings.filterwarnings("ignore", message=".*scipy.ndimage.morphology", category=DeprecationWarning)
