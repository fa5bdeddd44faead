"""One training on one device: a model, a recipe and CIFAR-10 resident there (torch and `models`; no Ray, no W&B)."""
