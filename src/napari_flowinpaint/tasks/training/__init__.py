"""Training: the inpainting networks (:mod:`.inpainting`), the damage detector
(:mod:`.detector`) and fine-tuning each on a user's stack (:mod:`.finetune`,
:mod:`.finetune_detector`), with what they
share (:mod:`.common`: training stacks, checkpoints, loss log; :mod:`.samplers`).

Needs torch; imported only when used (``import napari_flowinpaint.tasks`` does not)."""

from .common import TrainSource, default_sources, parse_source
from .detector import detector_loss, train_detector
from .finetune import FinetuneResult, finetune
from .finetune_detector import DetectorFinetuneResult, finetune_detector
from .inpainting import TrainResult, train
from .samplers import DetectorSampler, TripletSampler
from .scoring import RepairExample
from .settings import TrainSettings

__all__ = ["DetectorFinetuneResult", "DetectorSampler", "FinetuneResult", "RepairExample",
           "TrainResult",
           "TrainSettings", "TrainSource", "TripletSampler", "default_sources", "detector_loss",
           "finetune", "finetune_detector", "parse_source", "train", "train_detector"]
