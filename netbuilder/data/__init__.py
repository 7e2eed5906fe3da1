"""Datasets held in memory and transformed a whole batch at a time.

`catalog` (no torch) names the datasets; `idx`, `synthetic` and `imagefolder` read or make
them; `images` decodes one image file safely; `transforms` and `loader` feed the trainer.
"""
