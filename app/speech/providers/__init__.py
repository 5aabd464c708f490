"""Text-to-speech providers: one module per provider, all shaped like ``base.TTSProvider``."""
