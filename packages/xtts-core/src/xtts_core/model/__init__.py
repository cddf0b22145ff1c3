"""XTTS-v2 model modules: nn.Modules only (GPT, conditioning, HiFi-GAN decoder, speaker encoder)."""
