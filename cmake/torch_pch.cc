// Compiled once so its precompiled <torch/torch.h> can be reused.
