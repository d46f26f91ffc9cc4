"""vlm-autodrive: dashcam event videos -> supervision for video vision-language models."""

__version__ = "0.1.0"
