"""Measuring repairs and detections: image-quality metrics (:mod:`.metrics`), the repair
methods compared (:mod:`.baselines`), the repair harness after the paper's section 4.1
(:mod:`.repair`), paired comparisons of two weights on the same repairs (:mod:`.paired`), the
detection harness (:mod:`.detection`) and the demo (:mod:`.demo`)."""

from .baselines import DEFAULT_METHODS, METHODS, register_method
from .demo import demo_mask, run_demo
from .detection import evaluate_detection, format_detection_table
from .membranes import MembraneClassifier, membrane_f1
from .metrics import fsim, grain_ratio, psnr, psnr_from_mse, psnr_hole, sharpness_ratio, ssim
from .paired import WORTHWHILE_DB, PairedChange, paired_change
from .repair import METRICS, evaluate, format_table, parse_z_range, write_report

__all__ = ["DEFAULT_METHODS", "METHODS", "METRICS", "MembraneClassifier", "PairedChange",
           "WORTHWHILE_DB", "demo_mask", "evaluate", "evaluate_detection",
           "format_detection_table", "format_table", "fsim", "grain_ratio", "membrane_f1",
           "paired_change", "psnr", "psnr_from_mse", "psnr_hole", "parse_z_range",
           "register_method", "run_demo", "sharpness_ratio", "ssim", "write_report"]
