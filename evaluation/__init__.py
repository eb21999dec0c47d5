"""Scoring colorizations: metrics, one model against the gray baseline, and the comparison report.

- ``metrics``: PSNR, SSIM, MAE, colorfulness (formulas and ranges in its docstring).
- ``scoring``: evaluate one run on a data set next to the gray baseline; tables and JSON.
- ``report``: evaluate the latest run of every model on the same images: Markdown, grid, curves.

May import: ``core``, ``loaders``, ``priors``, ``models``, ``inference``.
"""
