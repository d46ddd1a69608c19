"""Evaluation: PSNR/SSIM on Y as the SR literature measures them, the Bicubic row, model evaluation."""
