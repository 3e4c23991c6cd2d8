"""The synthetic rooms' ranges: one home for everything that makes rooms.

The training augmentation (`kws_jax.augment.reverberate`), the speech
synthesizer (`kws_jax.synth.dsp.room_impulse_response`) and the config
checks draw or name the same rooms: the direct sound, then reflections
that start after a pre-delay, fade in, and decay by 60 dB over the
reverberation time, at a direct-to-reverberant energy ratio drawn per clip.
Plain numbers without JAX, so the synthesizer's NumPy worker processes do
not load JAX to read them.
"""

# Delay of the first reflection after the direct sound, seconds (low, high).
PREDELAY_S = (0.002, 0.010)
# The reflections fade in over this, seconds.
FADE_IN_S = 0.005
# Shortest reverberation time (60 dB decay) drawn, seconds; the longest is
# a setting (config.reverb_max_rt60_ms, synthesize --rt60_s_range).
MIN_RT60_S = 0.15
# Direct-to-reverberant energy ratio, dB (low, high).
DRR_DB = (0.0, 12.0)
