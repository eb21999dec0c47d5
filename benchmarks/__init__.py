"""The benchmark's parts; ``bench.py`` (the script) runs them and writes BENCHMARKS.md.

- ``settings``: presets (full, quick, smoke), what the sections share, progress lines.
- ``flops``: FLOPs per image from a model's layer shapes (the convention below).
- ``workloads``: timing loops, fresh models and one training step on random data in each encoding.
- ``compute``: sections peak, train, predict, prior, fusion_epochs.
- ``pipeline``: sections data (CifarGenerator against the original loop) and colorize.
- ``backends``: the backends section, each backend in a ``bench.py --worker`` subprocess.
- ``startup``: the startup section: fresh processes of every script, per runtime (ONNX Runtime, Keras).
- ``video``: the video section: clips colorized end to end in a child process, per stage.
- ``photos``: the photos section: training on photos, a cached crop bank against streaming crops.
- ``report``: the machine's description and the BENCHMARKS.md section.

May import: every package below it (``core`` ... ``inference``, ``training``); not ``cli``.

What ``python bench.py`` measures:

peak      float32 matrix multiply (n x n, 2 n^3 FLOPs) with NumPy and with the Keras backend
          (``keras.ops.matmul``); the best of the two is "peak", the reference of "% peak".
train     images/s of ``train_on_batch`` on random data in each model's encoding (fusion: a random
          prior, one-hot for fusion_label, softmax for fusion_resnet; GAN: one full
          ``gan_loop.train_step``, counting the real images of the step), per batch size, with
          XLA off and on (``jit_compile`` set after build, before the first step; for the GAN on
          the discriminator, the combined model and the generator, whose predict makes the
          fakes). A fresh model per setting; warm-up steps first; the median of timed windows.
          Also, at the default batch size, XLA off: the mixed_bfloat16 policy
          (``train.py --mixed-precision bfloat16``), against float32.
predict   images/s of ``predict_on_batch`` at batch 64 (the GAN: its generator).
prior     fusion_resnet's classifier prior (``priors.compute_prior``), images/s at batch 32 per
          backbone: efficientnet_lite0 with its real weights, inception_resnet_v2 with random
          weights (``allow_random_weights=True``; same layers, so the same cost; its ImageNet
          weights need a download). Priors go to a temporary cache, never read back: only compute.
fusion_epochs  fusion_resnet against fusion_label on the same images: the prior computed once
          (cold cache) and read back, then two epochs of each (epoch 2 is after tracing).
data      ``CifarGenerator`` over 10 epochs, its one-time decode and conversion included (median
          of as many runs as timed windows), against
          a re-creation of the original generator (per batch: each file opened with PIL, then
          ``skimage.color.rgb2lab`` per image in float64, stacked into X, Y), on a folder of
          32x32 PNGs and on a folder of 256x256 JPEGs (``image_size=256``). Target: >= 10x.
colorize  wall time of ``inference.photos.colorize_files`` for one 1024x1024 and one 4000x3000 JPEG
          (smooth synthetic photo): decode, predict (unet, random weights), recombine, PNG write.
backends  unet training at batch 32 under each Keras backend of --backends that is installed, each
          in a subprocess (``bench.py --worker``) with KERAS_BACKEND set, with that backend's
          default ``jit_compile`` (TensorFlow: off on CPU; JAX: on). For TensorFlow also two
          kernel variants beside the project's default (TF_ENABLE_ONEDNN_OPTS=1, set by cli/__init__.py):
          TensorFlow's own kernels (TF_ENABLE_ONEDNN_OPTS=0), and oneDNN restricted to AVX2
          (ONEDNN_MAX_CPU_ISA=AVX2: what a CPU without AVX-512 runs).
startup   wall time of fresh processes (best of 3): ``import tensorflow`` (the yardstick), every
          script's ``--help``, ``colorize.py`` on a 0.14 MP photo per runtime (and its first use,
          which makes the ONNX files), on 2 and 12 MP photos, ``predict.py`` per runtime, the demo
          until its page is served; one Colorizer's per-photo latency per runtime, in process.
video     frames/s of ``colorize_video`` with the shipped run on pan clips at 480p and 1080p, stable
          colors and frame by frame, ms per frame per stage, the child process's peak memory.
photos    the costs of training on photos: ``PhotoCrops.epoch_batch`` crops/s and CPU ms per crop (64 and
          224 px, 1 and 2 workers; BSDS500's train split when ``../shared/data/bsds500/train`` is there,
          else as many generated 481 x 321 JPEGs), the crop bank's build (K 8 at 64 px), the frozen
          EfficientNet-Lite0 taps' images/s (128 and 256 px, batch 32), effnet_unet's training images/s on
          cached taps (hints as the shipped run, 32 and 64 px, batch 32); then seconds per epoch of the
          folder x 8 crops at 64 px, cached (decoder only; the encoder once on 2N) against streaming
          (loader + encoder + decoder every epoch).

FLOP convention (columns GFLOP/s and % peak):

* forward FLOPs per image, from the layer shapes: a multiply-add is 2 FLOPs; Conv (any rank,
  depthwise included): 2 * k*k*cin*cout (the kernel's size) * Hout*Wout (output positions);
  Dense: 2 * in * out (per position when applied over a grid); separable conv: both kernels;
  transposed conv: input positions. Biases, activations, normalization, pooling, upsampling,
  concatenation and the optimizer update are not counted.
* training = 3 x forward (forward, then backward = 2 x forward: input and weight gradients).
* GAN, per real image of one train_step: G forward for the fakes (G), two D steps (2 x 3D), the
  combined step 3G + 2D (the frozen D is run forward and back to its input, without weight
  gradients): 4G + 8D in all.
* achieved GFLOP/s = FLOPs per image x images/s; % peak = that / the peak matmul GFLOP/s.
"""
