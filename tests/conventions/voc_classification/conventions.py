"""Right answers written the way real 16-824 S24 students write them; each must keep full marks
(tests/test_course_conventions.py). They are rewrites of the reference by the project, not students' code."""

from pathlib import Path

from grader.mutation import Mutant

REFERENCE = Path(__file__).resolve().parents[3] / "reference" / "voc_classification"


def span(file: str, start: str, end: str) -> str:
    """The reference's text of ``file`` from ``start`` through ``end`` (both included, each found once)."""
    text = (REFERENCE / file).read_text(encoding="utf-8")
    first = text.index(start)
    return text[first:text.index(end, first) + len(end)]


DS = "voc_dataset.py"
TR = "trainer.py"
Q2 = "train_q2.py"
ANNO = """            class_vec = torch.zeros(len(self.CLASS_NAMES))
            easy = torch.zeros(len(self.CLASS_NAMES), dtype=torch.bool)
            for obj in tree.getroot().iter("object"):
                name = obj.findtext("name", default="").strip()
                if name not in self.INV_CLASS:
                    raise ValueError(f"{fpath}: unknown class {name!r}; expected one of the 20 VOC classes")
                cls = self.INV_CLASS[name]
                class_vec[cls] = 1.0
                if obj.findtext("difficult", default="0").strip() != "1":
                    easy[cls] = True
            weight_vec = torch.where((class_vec > 0) & ~easy, 0.0, 1.0)
"""
LOSS = """            positive_part = torch.maximum(output, torch.zeros_like(output))
            elementwise = positive_part - output * target + torch.log1p(torch.exp(-output.abs()))
            loss = (elementwise * wgt).mean()
"""
AUGMENT = """        if self.split in TRAIN_SPLITS:
            # A random size x size window along the longer side, and a horizontal flip. (Shifting square
            # images as well, with padding=size // 8, halved how fast SimpleCNN learns the synthetic set.)
            return [transforms.RandomCrop(self.size), transforms.RandomHorizontalFlip()]
        return [transforms.CenterCrop(self.size)]
"""
HEAD = "        self.resnet.fc = nn.Linear(self.resnet.fc.in_features, num_classes)\n"
FORWARD = "        return self.resnet(x)\n"
ANNO_TESTS = "preload_anno"
LOSS_TESTS = "loss"

CONVENTIONS = [
    # -- preload_anno --------------------------------------------------------------------------------
    # The handout's own sentence, literally: "weight[i] = 0 iff an object of class i has the difficult
    # attribute set to 1" (the "any" reading), in the starter's variables.
    Mutant("anno_any_difficult_starter_style", DS, find=ANNO, replace="""            class_vec = torch.zeros(20)
            weight_vec = torch.ones(20)
            root = tree.getroot()
            for obj in root.findall('object'):
                cls_id = self.get_class_index(obj.find('name').text)
                class_vec[cls_id] = 1
                if int(obj.find('difficult').text) == 1:
                    weight_vec[cls_id] = 0
""", select=ANNO_TESTS, why="the handout's 'any' reading of the difficult rule"),
    # Children by position, as in VOC's XML (name, pose, truncated, difficult, bndbox).
    Mutant("anno_positional_children", DS, find=ANNO, replace="""            class_vec = torch.zeros(20)
            weight_vec = torch.ones(20)
            for elem in tree.getroot():
                if elem.tag == "object":
                    idx = self.INV_CLASS[elem[0].text]
                    class_vec[idx] = 1
                    weight_vec[idx] = min(weight_vec[idx], 1 - int(elem[3].text))
""", select=ANNO_TESTS, why="reads <name> and <difficult> by their position in VOC's <object>"),
    # -- get_random_augmentations / __getitem__ --------------------------------------------------------
    # A square resize after the starter's Resize(self.size), then a random resized crop in training and
    # nothing more at test.
    Mutant("square_resize_then_random_resized_crop", DS, find=AUGMENT, replace="""        square = transforms.Resize((self.size, self.size))
        if self.split == "test":
            return [square]
        return [square, transforms.RandomResizedCrop(self.size, scale=(0.6, 1.0)),
                transforms.RandomHorizontalFlip(p=0.5)]
""", select="split or flat_dim", why="a square Resize((size, size)) in __getitem__ with random resized crops"),
    Mutant("square_resize_in_getitem", DS, find="            transforms.Resize(self.size),\n",
           replace="            transforms.Resize((self.size, self.size)),\n", select="split or flat_dim",
           why="the starter's Resize made square (the crops that follow still apply)"),
    Mutant("augment_rotation_and_colour", DS, find=AUGMENT, replace="""        if self.split == 'trainval':
            return [transforms.RandomHorizontalFlip(p=0.5),
                    transforms.RandomVerticalFlip(p=0.5),
                    transforms.RandomRotation(degrees=(-11, 11)),
                    transforms.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.1),
                    transforms.RandomResizedCrop(self.size)]
        else:
            return [transforms.CenterCrop(self.size)]
""", select="split or flat_dim", why="flips, rotation and colour jitter before a random resized crop"),
    Mutant("transforms_v2", DS, find="import torchvision.transforms as transforms\n",
           replace="import torchvision.transforms.v2 as transforms\n", select="split or flat_dim",
           why="torchvision's transforms.v2 on the PIL images"),
    # -- the loss in train() -----------------------------------------------------------------------
    # torch.sigmoid, then logs of probabilities clamped away from 0 and 1 (torch's own BCELoss clamps too).
    Mutant("loss_clamped_probabilities", TR, find=LOSS, replace="""            probs = torch.sigmoid(output)
            bce_loss = -target * torch.log(torch.clamp(probs, min=1e-7, max=1 - 1e-7)) \\
                - (1 - target) * torch.log(torch.clamp(1 - probs, min=1e-7, max=1 - 1e-7))
            loss = torch.mean(wgt * bce_loss)
""", select=LOSS_TESTS, why="clamped probabilities: finite, and exact where the logits are moderate"),
    Mutant("loss_epsilon_per_image_weighted_mean", TR, find=LOSS, replace="""            epsilon = 1e-15
            sigmoid_output = torch.sigmoid(output)
            loss_per_element = - (target * torch.log(sigmoid_output + epsilon)
                                  + (1 - target) * torch.log(1 - sigmoid_output + epsilon))
            weighted_loss = loss_per_element * wgt
            loss_per_example = torch.sum(weighted_loss, dim=1) / torch.sum(wgt, dim=1)
            loss = torch.mean(loss_per_example)
""", select=LOSS_TESTS, why="each image's weighted mean, averaged over the batch, with an epsilon in the logs"),
    Mutant("loss_logsigmoid_sum_over_batch", TR, find=LOSS, replace="""            log_p = torch.nn.functional.logsigmoid(output)
            log_not_p = torch.nn.functional.logsigmoid(-output)
            loss = -(wgt * (target * log_p + (1 - target) * log_not_p)).sum() / output.shape[0]
""", select=LOSS_TESTS, why="log-sigmoid (not a loss function), summed over classes, averaged over images"),
    Mutant("loss_over_weight_sum", TR, find="            loss = (elementwise * wgt).mean()\n",
           replace="            loss = (elementwise * wgt).sum() / wgt.sum()\n", select=LOSS_TESTS,
           why="the weighted sum over the sum of the weights"),
    # A helper function written where the starter's TODO is.
    Mutant("loss_nested_helper", TR, find=LOSS, replace="""            def loss_fn(output, target, wgt):
                n, num_classes = output.shape
                softplus = torch.clamp(output, min=0) + torch.log(1 + torch.exp(-torch.abs(output)))
                return torch.sum(wgt * (softplus - target * output)) / (n * num_classes)

            loss = loss_fn(output, target, wgt)
""", select=LOSS_TESTS, why="the loss as a small function of its own"),
    # The trainer imports the loader function by name, and the writer through the module.
    Mutant("trainer_imports_get_data_loader", TR, find=span(TR, "import utils\n", "split=\"test\", inp_size=args.inp_size)\n"),
           replace=span(TR, "import utils\n", "split=\"test\", inp_size=args.inp_size)\n").replace(
               "import utils\n", "import utils\nfrom utils import get_data_loader\n").replace(
               "utils.get_data_loader(", "get_data_loader("),
           select=LOSS_TESTS, why="`from utils import get_data_loader`, called by its own name"),
    Mutant("writer_through_module", TR, find="    writer = SummaryWriter()\n",
           replace="    import torch.utils.tensorboard as tensorboard\n    writer = tensorboard.SummaryWriter()\n",
           select=LOSS_TESTS, why="the SummaryWriter through its module (events written to runs/)"),
    Mutant("logs_loss_to_wandb_instead", TR,
           find='                writer.add_scalar("Loss/train", loss.item(), cnt)\n',
           replace='                import wandb\n                if wandb.run is None:\n'
                   '                    wandb.init(project="vlr-hw1", name="q1")\n'
                   '                wandb.log({"Loss/train": loss.item()})\n',
           select=LOSS_TESTS, why="logs the loss with wandb instead of TensorBoard (graded through its gradient)"),
    Mutant("args_use_cuda_by_default", "utils.py", find="    use_cuda = False\n", replace="    use_cuda = True\n",
           select="", why="the course ran on GPUs: ARGS defaults to CUDA"),
    # -- ResNet ---------------------------------------------------------------------------------------
    # "Define a FC layer here to process the features": a Linear(1000, num_classes) after ImageNet's fc.
    Mutant("resnet_head_after_imagenet_fc", Q2, find=span(Q2, HEAD, FORWARD),
           replace=span(Q2, HEAD, FORWARD).replace(HEAD, "        self.fc = nn.Linear(1000, num_classes)\n").replace(
               FORWARD, "        x = self.resnet(x)\n        x = self.fc(x)\n        return x\n"),
           select="resnet", why="the other reading of the starter's TODO: ImageNet's fc kept, a new layer after it"),
    Mutant("resnet_pretrained_true", Q2, find='torchvision.models.resnet18(weights="IMAGENET1K_V1")',
           replace="torchvision.models.resnet18(pretrained=True)", select="resnet",
           why="torchvision's legacy pretrained=True (the same ImageNet weights)"),
    Mutant("resnet_head_with_dropout", Q2, find=HEAD,
           replace="        self.resnet.fc = nn.Sequential(nn.Dropout(0.5), nn.Linear(512, num_classes))\n",
           select="resnet", why="dropout before the new head"),
    Mutant("resnet_on_cuda", Q2, find=FORWARD, replace="        return self.resnet(x.cuda())\n", select="resnet",
           why="16-824 ran on GPUs: the input moved with .cuda() (run on the CPU here, manifest cuda_on_cpu)"),
]
