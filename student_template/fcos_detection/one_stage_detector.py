"""FCOS: a one-stage, anchor-free object detector (backbone with FPN, prediction head, losses, inference).

Mirrors ``detection/one_stage_detector.py`` of CMU 16-824 (Spring 2024), which is
drawn from Justin Johnson's EECS 498/598 at the University of Michigan. Models
build with random weights, or with a local checkpoint of the RegNet trunk:
nothing is downloaded unless you ask for torchvision's weights by name.
"""

from __future__ import annotations

import math
import os

import torch
from detection_utils import (
    TensorDict,
    class_spec_nms,
    fcos_apply_deltas_to_locations,
    fcos_get_deltas_from_locations,
    fcos_make_centerness_targets,
    fcos_match_locations_to_gt,
    get_fpn_location_coords,
)
from torch import nn
from torch.nn import functional as F
from torch.utils.data._utils.collate import default_collate
from torchvision import models
from torchvision.models import feature_extraction
from torchvision.ops import sigmoid_focal_loss


def regnet_trunk(weights: str | os.PathLike | models.RegNet_X_400MF_Weights | None = None) -> nn.Module:
    """The ``regnet_x_400mf`` classifier whose intermediate features feed the FPN.

    Args:
        weights: None for random weights; a path to a local checkpoint (a
            ``state_dict`` of ``torchvision.models.regnet_x_400mf``, e.g.
            ImageNet weights copied by hand); or torchvision's weights, as a
            ``RegNet_X_400MF_Weights`` value or its name (``"IMAGENET1K_V1"``),
            which torchvision downloads (needs internet).

    Raises:
        FileNotFoundError: when ``weights`` looks like a path and no file is there.
    """
    if weights is None:
        return models.regnet_x_400mf(weights=None)
    if isinstance(weights, models.RegNet_X_400MF_Weights):
        return models.regnet_x_400mf(weights=weights)
    name = os.fspath(weights)
    if name in models.RegNet_X_400MF_Weights.__members__ or name == "DEFAULT":
        return models.regnet_x_400mf(weights=name)
    if not os.path.isfile(name):
        raise FileNotFoundError(f"no RegNet checkpoint at {name!r} (give None for random weights, a local "
                                "checkpoint file, or a torchvision weights name such as 'IMAGENET1K_V1')")
    model = models.regnet_x_400mf(weights=None)
    state = torch.load(name, map_location="cpu", weights_only=True)
    model.load_state_dict(state.get("state_dict", state) if isinstance(state, dict) else state)
    return model


class DetectorBackboneWithFPN(nn.Module):
    r"""Detection backbone: a tiny RegNet coupled with a Feature Pyramid Network (FPN).

    Takes a batch of images ``(B, 3, H, W)`` and gives features of three FPN
    levels, each with ``out_channels`` channels:

        - level p3: (out_channels, H /  8, W /  8)      stride =  8
        - level p4: (out_channels, H / 16, W / 16)      stride = 16
        - level p5: (out_channels, H / 32, W / 32)      stride = 32

    (sizes rounded up; use sides divisible by 32, e.g. 224 gives 28 / 14 / 7).

    Args:
        out_channels (int): channels of every FPN level.
        weights: weights of the RegNet trunk, see ``regnet_trunk`` (None: random).
    """

    def __init__(self, out_channels: int, weights: str | os.PathLike | None = None):
        super().__init__()
        self.out_channels = out_channels

        _cnn = regnet_trunk(weights)

        # Torchvision models only return features from the last level. Detector
        # backbones (with FPN) require intermediate features of different scales.
        # So we wrap the ConvNet with torchvision's feature extractor. Here we
        # will get output features with names (c3, c4, c5) with same stride as
        # (p3, p4, p5) described above.
        self.backbone = feature_extraction.create_feature_extractor(
            _cnn,
            return_nodes={
                "trunk_output.block2": "c3",
                "trunk_output.block3": "c4",
                "trunk_output.block4": "c5",
            },
        )

        # Pass a dummy batch of input images to infer shapes of (c3, c4, c5):
        # 64, 160 and 400 channels. (Eval mode and no_grad: the dummy batch must
        # not change the batch-norm statistics.)
        self.backbone.eval()
        with torch.no_grad():
            dummy_out = self.backbone(torch.randn(1, 3, 64, 64))
        self.backbone.train()
        dummy_out_shapes = [(key, value.shape) for key, value in dummy_out.items()]

        ######################################################################
        # TODO: Initialize additional Conv layers for FPN.                   #
        #                                                                    #
        # Create THREE "lateral" 1x1 conv layers to transform (c3, c4, c5)   #
        # such that they all end up with the same `out_channels`.            #
        # Then create THREE "output" 3x3 conv layers to transform the merged #
        # FPN features to output (p3, p4, p5) features.                      #
        # All conv layers must have stride=1 and padding such that features  #
        # do not get downsampled due to 3x3 convs.                           #
        #                                                                    #
        # HINT: You have to use `dummy_out_shapes` defined above to decide   #
        # the input/output channels of these layers.                         #
        ######################################################################
        # This behaves like a Python dict, but makes PyTorch understand that
        # there are trainable weights inside it.
        # Add THREE lateral 1x1 conv and THREE output 3x3 conv layers.
        self.fpn_params = nn.ModuleDict()
        raise NotImplementedError("TODO: DetectorBackboneWithFPN.__init__")

    @property
    def fpn_strides(self) -> dict[str, int]:
        """Total stride up to each FPN level; invariant to the input image size."""
        return {"p3": 8, "p4": 16, "p5": 32}

    def forward(self, images: torch.Tensor) -> TensorDict:
        """FPN features of a batch of images.

        Top-down pathway: ``m5 = lateral(c5)``, ``m4 = lateral(c4) + up(m5)``,
        ``m3 = lateral(c3) + up(m4)``, where ``up`` resizes with nearest-neighbour
        interpolation (``F.interpolate``'s default) to the size of the finer
        level; then ``p_i = output_conv_i(m_i)``.

        Args:
            images (Tensor[B, 3, H, W]): a batch of normalised images.

        Returns:
            dict[str, Tensor[B, out_channels, H_l, W_l]]: features of ``"p3"``,
            ``"p4"`` and ``"p5"``, in this order.
        """
        # Multi-scale features, dictionary with keys: {"c3", "c4", "c5"}.
        backbone_feats = self.backbone(images)

        fpn_feats = {"p3": None, "p4": None, "p5": None}
        ######################################################################
        # TODO: Fill output FPN features (p3, p4, p5) using RegNet features  #
        # (c3, c4, c5) and FPN conv layers created above.                    #
        # HINT: Use `F.interpolate` to upsample FPN features.                #
        ######################################################################
        raise NotImplementedError("TODO: DetectorBackboneWithFPN.forward")
        return fpn_feats


class FCOSPredictionNetwork(nn.Module):
    """FCOS head: class logits, box deltas and centerness at every FPN location.

    Two "stems" of alternating 3x3 convs (stride 1, padding 1) and ReLUs: the
    class stem feeds ``pred_cls``; the box stem feeds ``pred_box`` and
    ``pred_ctr``. The same weights serve every FPN level. For a picture, see
    Figure 2 (right) of the FCOS paper: https://arxiv.org/abs/1904.01355

    Args:
        num_classes (int): number of object classes.
        in_channels (int): channels of the FPN features it reads.
        stem_channels (list[int]): output channels of each conv of a stem.
    """

    def __init__(self, num_classes: int, in_channels: int, stem_channels: list[int]):
        super().__init__()

        ######################################################################
        # TODO: Create a stem of alternating 3x3 convolution layers and RELU
        # activation modules. Note there are two separate stems for class and
        # box stem. The prediction layers for box regression and centerness
        # operate on the output of `stem_box`.
        # See FCOS figure again; both stems are identical.
        #
        # Use `in_channels` and `stem_channels` for creating these layers, the
        # docstring above tells you what they mean. Initialize weights of each
        # conv layer from a normal distribution with mean = 0 and std dev = 0.01
        # and all biases with zero. Use conv stride = 1 and zero padding such
        # that size of input features remains same: remember we need predictions
        # at every location in feature map, we shouldn't "lose" any locations.
        ######################################################################
        # Fill these.
        stem_cls = []
        stem_box = []
        raise NotImplementedError("TODO: FCOSPredictionNetwork.__init__")

        # Wrap the layers defined by student into a `nn.Sequential` module:
        self.stem_cls = nn.Sequential(*stem_cls)
        self.stem_box = nn.Sequential(*stem_box)

        # Initialize all layers.
        for stems in (self.stem_cls, self.stem_box):
            for layer in stems:
                if isinstance(layer, nn.Conv2d):
                    torch.nn.init.normal_(layer.weight, mean=0, std=0.01)
                    torch.nn.init.constant_(layer.bias, 0)

        ######################################################################
        # TODO: Create THREE 3x3 conv layers for individually predicting three
        # things at every location of feature map:
        #     1. object class logits (`num_classes` outputs)
        #     2. box regression deltas (4 outputs: LTRB deltas from locations)
        #     3. centerness logits (1 output)
        ######################################################################

        # Replace these lines with your code, keep variable names unchanged.
        self.pred_cls = None  # Class prediction conv
        self.pred_box = None  # Box regression conv
        self.pred_ctr = None  # Centerness conv
        raise NotImplementedError("TODO: FCOSPredictionNetwork.__init__")

        # OVERRIDE: Use a negative bias in `pred_cls` to improve training
        # stability. Without this, the training will most likely diverge.
        # STUDENTS: You do not need to get into details of why this is needed.
        if self.pred_cls is not None:
            torch.nn.init.constant_(self.pred_cls.bias, -math.log(99))

    def forward(self, feats_per_fpn_level: TensorDict) -> list[TensorDict]:
        """Predictions at every location of every FPN level, channels last.

        Each ``(B, C, H, W)`` output map is flattened to ``(B, H * W, C)``, row
        by row (``x`` varies fastest), the order of ``get_fpn_location_coords``.
        Logits stay logits: no sigmoid here.

        Args:
            feats_per_fpn_level (dict[str, Tensor[B, in_channels, H, W]]): FPN
                features, keys ``"p3"``, ``"p4"``, ``"p5"``. For a 224 x 224
                input, H = W are 28, 14, 7.

        Returns:
            list of three dicts with the keys of the input:
            class logits ``(B, H * W, num_classes)``, box regression deltas
            ``(B, H * W, 4)`` and centerness logits ``(B, H * W, 1)``.
        """
        ######################################################################
        # TODO: Iterate over every FPN feature map and obtain predictions using
        # the layers defined above. Remember that prediction layers of box
        # regression and centerness will operate on output of `stem_box`,
        # and classification layer operates separately on `stem_cls`.
        #
        # CAUTION: The original FCOS model uses shared stem for centerness and
        # classification. Recent follow-up papers commonly place centerness and
        # box regression predictors with a shared stem, which we follow here.
        #
        # DO NOT apply sigmoid to classification and centerness logits.
        ######################################################################
        # Fill these with keys: {"p3", "p4", "p5"}, same as input dictionary.
        class_logits = {}
        boxreg_deltas = {}
        centerness_logits = {}
        raise NotImplementedError("TODO: FCOSPredictionNetwork.forward")

        return [class_logits, boxreg_deltas, centerness_logits]


class FCOS(nn.Module):
    """FCOS: Fully-Convolutional One-Stage Detector.

    Puts everything together: a backbone with FPN and a prediction head. It
    computes the training losses in training mode and detects boxes in eval
    mode (``model.eval()``).

    Args:
        num_classes (int): number of object classes.
        fpn_channels (int): channels of the FPN levels.
        stem_channels (list[int]): channels of the head's stem convs.
        backbone_weights: weights of the RegNet trunk (see ``regnet_trunk``);
            None for random weights.
    """

    def __init__(self, num_classes: int, fpn_channels: int, stem_channels: list[int],
                 backbone_weights: str | os.PathLike | None = None):
        super().__init__()
        self.num_classes = num_classes

        ######################################################################
        # TODO: Initialize backbone and prediction network using arguments.  #
        ######################################################################
        # Feel free to delete these two lines: (but keep variable names same)
        self.backbone = None
        self.pred_net = None
        raise NotImplementedError("TODO: FCOS.__init__")

        # Averaging factor for training loss; EMA of foreground locations.
        # STUDENTS: See its use in `forward` when you implement losses.
        self._normalizer = 150  # per image

    def forward(
        self,
        images: torch.Tensor,
        gt_boxes: torch.Tensor | None = None,
        test_score_thresh: float | None = None,
        test_nms_thresh: float | None = None,
    ):
        """Training losses (training mode) or detections (eval mode).

        Training: every location gets a target with ``fcos_match_locations_to_gt``
        (per image) and ``fcos_get_deltas_from_locations``. Per location:

        * ``loss_cls``: ``torchvision.ops.sigmoid_focal_loss`` (alpha 0.25,
          gamma 2) of the class logits against the one-hot GT class (all zeros
          for background), summed over classes;
        * ``loss_box``: ``0.25 * |pred_deltas - gt_deltas|`` (L1, averaged over
          the four LTRB values by the 0.25), zero at background locations;
        * ``loss_ctr``: ``binary_cross_entropy_with_logits`` of the centerness
          logit against ``fcos_make_centerness_targets``, zero at background.

        Each is summed over all locations of the batch and divided by
        ``normalizer * B``, where ``normalizer`` is an exponential moving
        average of foreground locations per image, updated on every training
        call before the losses: ``n <- 0.9 * n + 0.1 * positives / B``
        (starting at 150).

        Args:
            images (Tensor[B, 3, H, W]): a batch of images.
            gt_boxes (Tensor[B, N, 5]): ``gt_boxes[i, j] = (x1, y1, x2, y2, C)``,
                the ``j``-th object of image ``i`` in absolute pixel
                coordinates; rows of -1 are padding. Training only.
            test_score_thresh (float | None): inference only, see ``inference``.
            test_nms_thresh (float | None): inference only, see ``inference``.

        Returns:
            Training: ``{"loss_cls": Tensor[], "loss_box": Tensor[], "loss_ctr": Tensor[]}``.
            Eval: the result of ``inference`` (batch size 1).
        """

        ######################################################################
        # TODO: Process the image through backbone, FPN, and prediction head #
        # to obtain model predictions at every FPN location.                 #
        # Get dictionaries of keys {"p3", "p4", "p5"} giving predicted class #
        # logits, deltas, and centerness.                                    #
        ######################################################################
        # Feel free to delete this line: (but keep variable names same)
        backbone_feats = None
        pred_cls_logits, pred_boxreg_deltas, pred_ctr_logits = None, None, None
        raise NotImplementedError("TODO: FCOS.forward")

        ######################################################################
        # TODO: Get absolute co-ordinates `(xc, yc)` for every location in
        # FPN levels.
        #
        # HINT: You have already implemented everything, just have to
        # call the functions properly.
        ######################################################################
        # Feel free to delete this line: (but keep variable names same)
        locations_per_fpn_level = None
        raise NotImplementedError("TODO: FCOS.forward")

        if not self.training:
            # During inference, just go to this method and skip rest of the
            # forward pass.
            # fmt: off
            return self.inference(
                images, locations_per_fpn_level,
                pred_cls_logits, pred_boxreg_deltas, pred_ctr_logits,
                test_score_thresh=test_score_thresh,
                test_nms_thresh=test_nms_thresh,
            )
            # fmt: on

        ######################################################################
        # TODO: Assign ground-truth boxes to feature locations. We have this
        # implemented in a `fcos_match_locations_to_gt`. This operation is NOT
        # batched so call it separately per GT boxes in batch.
        ######################################################################
        # List of dictionaries with keys {"p3", "p4", "p5"} giving matched
        # boxes for locations per FPN level, per image. Fill this list:
        matched_gt_boxes = []
        # Calculate GT deltas for these matched boxes. Similar structure
        # as `matched_gt_boxes` above. Fill this list:
        matched_gt_deltas = []
        raise NotImplementedError("TODO: FCOS.forward")

        # Collate lists of dictionaries, to dictionaries of batched tensors.
        # These are dictionaries with keys {"p3", "p4", "p5"} and values as
        # tensors of shape (batch_size, locations_per_fpn_level, 5 or 4)
        matched_gt_boxes = default_collate(matched_gt_boxes)
        matched_gt_deltas = default_collate(matched_gt_deltas)

        # Combine predictions and GT from across all FPN levels.
        # shape: (batch_size, num_locations_across_fpn_levels, ...)
        matched_gt_boxes = self._cat_across_fpn_levels(matched_gt_boxes)
        matched_gt_deltas = self._cat_across_fpn_levels(matched_gt_deltas)
        pred_cls_logits = self._cat_across_fpn_levels(pred_cls_logits)
        pred_boxreg_deltas = self._cat_across_fpn_levels(pred_boxreg_deltas)
        pred_ctr_logits = self._cat_across_fpn_levels(pred_ctr_logits)

        # Perform EMA update of normalizer by number of positive locations.
        num_pos_locations = (matched_gt_boxes[:, :, 4] != -1).sum()
        pos_loc_per_image = num_pos_locations.item() / images.shape[0]
        self._normalizer = 0.9 * self._normalizer + 0.1 * pos_loc_per_image

        #######################################################################
        # TODO: Calculate losses per location for classification, box reg and
        # centerness. Remember to set box/centerness losses for "background"
        # positions to zero.
        ######################################################################
        # Feel free to delete this line: (but keep variable names same)
        loss_cls, loss_box, loss_ctr = None, None, None
        raise NotImplementedError("TODO: FCOS.forward")

        # Sum all locations and average by the EMA of foreground locations.
        # In training code, we simply add these three and call `.backward()`
        return {
            "loss_cls": loss_cls.sum() / (self._normalizer * images.shape[0]),
            "loss_box": loss_box.sum() / (self._normalizer * images.shape[0]),
            "loss_ctr": loss_ctr.sum() / (self._normalizer * images.shape[0]),
        }

    @staticmethod
    def _cat_across_fpn_levels(dict_with_fpn_levels: dict[str, torch.Tensor], dim: int = 1) -> torch.Tensor:
        """Concatenate a dict of tensors over the FPN levels ``{"p3", "p4", "p5"}`` into one tensor."""
        return torch.cat(list(dict_with_fpn_levels.values()), dim=dim)

    def inference(
        self,
        images: torch.Tensor,
        locations_per_fpn_level: dict[str, torch.Tensor],
        pred_cls_logits: dict[str, torch.Tensor],
        pred_boxreg_deltas: dict[str, torch.Tensor],
        pred_ctr_logits: dict[str, torch.Tensor],
        test_score_thresh: float | None = 0.3,
        test_nms_thresh: float | None = 0.5,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Detections of a single image (batch size 1) from the head's predictions.

        Per level: score every location and class by
        ``sqrt(sigmoid(class logit) * sigmoid(centerness logit))``; give each
        location its best class and that score; keep locations whose score is
        greater than ``test_score_thresh``; decode their boxes with
        ``fcos_apply_deltas_to_locations`` and the level's stride; clip the
        boxes to the image (``0 <= x <= W``, ``0 <= y <= H``). Then run
        ``class_spec_nms`` over all levels together.

        Args:
            images (Tensor[1, 3, H, W]): the image (only its size is used).
            locations_per_fpn_level (dict[str, Tensor[N_l, 2]]): locations.
            pred_cls_logits (dict[str, Tensor[1, N_l, num_classes]]): class logits.
            pred_boxreg_deltas (dict[str, Tensor[1, N_l, 4]]): LTRB deltas.
            pred_ctr_logits (dict[str, Tensor[1, N_l, 1]]): centerness logits.
            test_score_thresh (float | None): score threshold (None: 0.3).
            test_nms_thresh (float | None): IoU threshold of NMS (None: 0.5).

        Returns:
            pred_boxes (Tensor[K, 4]): absolute ``(x1, y1, x2, y2)`` boxes;
            pred_classes (Tensor[K], int64): class of each box, never -1;
            pred_scores (Tensor[K]): score of each box; highest score first.

        Raises:
            ValueError: for a batch of more than one image.
        """
        if images.shape[0] != 1:
            raise ValueError(f"inference handles one image at a time, got a batch of {images.shape[0]}")
        if test_score_thresh is None:
            test_score_thresh = 0.3
        if test_nms_thresh is None:
            test_nms_thresh = 0.5
        height, width = images.shape[-2:]

        # Gather scores and boxes from all FPN levels in this list. Once
        # gathered, we will perform NMS to filter highly overlapping predictions.
        pred_boxes_all_levels = []
        pred_classes_all_levels = []
        pred_scores_all_levels = []

        for level_name in locations_per_fpn_level.keys():

            # Get locations and predictions from a single level.
            # We index predictions by `[0]` to remove batch dimension.
            level_locations = locations_per_fpn_level[level_name]
            level_cls_logits = pred_cls_logits[level_name][0]
            level_deltas = pred_boxreg_deltas[level_name][0]
            level_ctr_logits = pred_ctr_logits[level_name][0]

            ##################################################################
            # TODO: FCOS uses the geometric mean of class probability and
            # centerness as the final confidence score. This helps in getting
            # rid of excessive amount of boxes far away from object centers.
            # Compute this value here (recall sigmoid(logits) = probabilities)
            #
            # Then perform the following steps in order:
            #   1. Get the most confidently predicted class and its score for
            #      every box. Use level_pred_scores: (N, num_classes) => (N, )
            #   2. Only retain prediction that have a confidence score higher
            #      than provided threshold in arguments.
            #   3. Obtain predicted boxes using predicted deltas and locations
            #   4. Clip XYXY box-cordinates that go beyond the height and
            #      and width of input image.
            ##################################################################
            # Feel free to delete this line: (but keep variable names same)
            level_pred_boxes, level_pred_classes, level_pred_scores = (
                None,
                None,
                None,  # Need tensors of shape: (N, 4) (N, ) (N, )
            )

            # Compute geometric mean of class logits and centerness:
            level_pred_scores = torch.sqrt(level_cls_logits.sigmoid() * level_ctr_logits.sigmoid())
            raise NotImplementedError("TODO: FCOS.inference")

            pred_boxes_all_levels.append(level_pred_boxes)
            pred_classes_all_levels.append(level_pred_classes)
            pred_scores_all_levels.append(level_pred_scores)

        ######################################################################
        # Combine predictions from all levels and perform NMS.
        pred_boxes_all_levels = torch.cat(pred_boxes_all_levels)
        pred_classes_all_levels = torch.cat(pred_classes_all_levels)
        pred_scores_all_levels = torch.cat(pred_scores_all_levels)

        keep = class_spec_nms(
            pred_boxes_all_levels,
            pred_scores_all_levels,
            pred_classes_all_levels,
            iou_threshold=test_nms_thresh,
        )
        pred_boxes_all_levels = pred_boxes_all_levels[keep]
        pred_classes_all_levels = pred_classes_all_levels[keep]
        pred_scores_all_levels = pred_scores_all_levels[keep]
        return (
            pred_boxes_all_levels,
            pred_classes_all_levels,
            pred_scores_all_levels,
        )
