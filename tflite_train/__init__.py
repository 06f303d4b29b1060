"""tflite-train: on-device training for int8 TensorFlow Lite models on microcontrollers."""
__version__ = "0.1.0"
