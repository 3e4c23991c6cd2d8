"""Export of trained models to TFLite (raw audio in, probabilities out)."""
