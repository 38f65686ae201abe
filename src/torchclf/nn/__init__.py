"""The network's parts: the MLP and its ensembles, activations, losses, starting point."""
