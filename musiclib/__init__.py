"""musiclib: generate music from raw audio. The shared library behind the course notebooks."""
from musiclib.config import AudioConfig
from musiclib.utils import fast_mode, get_device, run_size, set_seed

__version__ = "0.1.0"
__all__ = ["AudioConfig", "fast_mode", "get_device", "run_size", "set_seed", "__version__"]
