"""VaDE experiments: deep clustering and generation with a GMM-prior VAE."""
