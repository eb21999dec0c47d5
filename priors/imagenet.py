"""ImageNet input normalization of the ported classifiers (their torchvision-style mean and std of RGB in [0, 1]).

A module of constants only, so that code without Keras (the lean inference path) reads them too.
"""
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
