"""The offline speech synthesizer: Speech Commands folders of spoken words.

A tool beside the library core (nothing in training imports it); its
command line is `python -m kws_jax.synthesize`. Modules, lower to higher:

  voices       Voice, Performance, the Engine interface, install hints
  espeak       eSpeak NG through its C library; `pronounce` (IPA)
  engines      Piper and Flite; engines by name; which work here
  confusables  words and made-up words that sound close to a command
  dsp          trim, fit, place, room and noise (NumPy)
  plan         SynthesisOptions; what each clip will be (`plan_word`)
  render       one clip from its plan
  dataset      the folder: workers, settings, manifest, resuming
"""
