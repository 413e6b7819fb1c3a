"""Audio: file loading and resampling (io.py), the shared STFT and mel
filterbank (mel.py), and one log-mel recipe per model that uses them."""
