"""Name or folder -> a loaded CLIP encoder and captioner: the registry, downloads, model folders,
weight files, and the networks (CLIP, ClipCap, the LSTM captioners) with their decoders."""
