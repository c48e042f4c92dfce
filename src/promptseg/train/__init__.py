"""Training commands: CLIP contrastive fine-tuning, SAM fine-tuning, autoencoder pretraining."""
