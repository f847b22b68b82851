"""Export of trained models to ONNX, with parity checks against torch and int8 / fp16 variants."""
