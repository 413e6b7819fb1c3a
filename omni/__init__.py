"""omni: a tiny omni-modal model and MuFun's audio path, from scratch in PyTorch."""
