"""Training: setting up a run, the ``fit`` trainer, the GAN's manual loop, tf.distribute.

- ``session``: what ``train.py`` does once its arguments are parsed: resolve the configuration,
  create or resume the run folder, load the data and priors, build the model, hand it to a trainer.
- ``fit``: training of the models that use ``model.fit`` (checkpoints, samples, logs per epoch).
- ``encoder_data``: effnet_unet's data: the frozen encoder's taps once per image (and mirror image),
  class rebalancing and packed targets of the classification head, ``--init`` from another run.
- ``gan_loop``: the conditional GAN's ``train_on_batch`` loop.
- ``checkpointing``: when both trainers save (epoch ends, ``--save-every``, stop signals), what a
  checkpoint's state says and where a resumed run continues (the exact batch).
- ``distribute``: ``--strategy`` (tf.distribute strategies, synchronized BatchNorm, the chief).

May import: ``core``, ``loaders``, ``priors``, ``models``, ``inference``.
"""
