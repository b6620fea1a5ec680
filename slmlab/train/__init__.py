"""Training small code LMs from scratch: corpus, tokenizers, architectures, training, sanity checks."""
