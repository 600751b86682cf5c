"""Typical student bugs in voc_classification; each must lose points (tests/test_mutants.py).

The course profile's mutants change what S24 students write (the starter's TODOs); the 2020 edition's
files and this project's metrics.py are graded in their own profiles.
"""

from grader.mutation import Mutant

LOSS = "            loss = (elementwise * wgt).mean()\n"
ELEMENTWISE = "elementwise = positive_part - output * target + torch.log1p(torch.exp(-output.abs()))"
HEAD = "self.resnet.fc = nn.Linear(self.resnet.fc.in_features, num_classes)"

MUTANTS = [
    # -- voc_dataset.py ----------------------------------------------------------------------------
    Mutant("anno_difficult_ignored", "voc_dataset.py",
           find="weight_vec = torch.where((class_vec > 0) & ~easy, 0.0, 1.0)",
           replace="weight_vec = torch.ones(len(self.CLASS_NAMES))",
           select="preload_anno_repeated", why="difficult flags never read: every weight is 1"),
    Mutant("anno_absent_weight_zero", "voc_dataset.py",
           find="weight_vec = torch.where((class_vec > 0) & ~easy, 0.0, 1.0)",
           replace="weight_vec = torch.where(~easy, 0.0, 1.0)",
           select="preload_anno_repeated", why="absent classes get weight 0 (only present, easy classes count)"),
    Mutant("anno_difficult_compared_to_int", "voc_dataset.py",
           find='if obj.findtext("difficult", default="0").strip() != "1":',
           replace='if obj.findtext("difficult", default="0").strip() != 1:',
           select="preload_anno_repeated", why="compares the XML text '1' with the integer 1: nothing is ever difficult"),
    Mutant("anno_class_off_by_one", "voc_dataset.py",
           find="cls = self.INV_CLASS[name]",
           replace="cls = self.INV_CLASS[name] - 1",
           select="preload_anno_repeated", why="1-based class index (aeroplane lands on tvmonitor)"),
    Mutant("anno_last_object_wins", "voc_dataset.py",
           find="                if obj.findtext(\"difficult\", default=\"0\").strip() != \"1\":\n"
                "                    easy[cls] = True\n",
           replace="                easy[cls] = obj.findtext(\"difficult\", default=\"0\").strip() != \"1\"\n",
           select="preload_anno_repeated", why="the difficult flag of the last object of a class overwrites the others"),
    Mutant("augment_test_split_randomly", "voc_dataset.py",
           find="if self.split in TRAIN_SPLITS:",
           replace="if True:",
           select="test_split", why="random crops and flips on the test split too"),
    Mutant("augment_test_split_uncropped", "voc_dataset.py",
           find="return [transforms.CenterCrop(self.size)]",
           replace="return []",
           select="test_split", why="no crop at test: images keep their aspect ratio and cannot be batched"),
    Mutant("augment_never", "voc_dataset.py",
           find="if self.split in TRAIN_SPLITS:",
           replace="if self.split == 'train':",
           select="train_split", why="augments only the 'train' split, not 'trainval' (what train() loads)"),
    Mutant("augment_flip_only", "voc_dataset.py",
           find="return [transforms.RandomCrop(self.size), transforms.RandomHorizontalFlip()]",
           replace="return [transforms.RandomHorizontalFlip()]",
           select="train_split", why="flips but never crops: training images of other aspect ratios differ in size"),
    Mutant("augment_train_larger_crop", "voc_dataset.py",
           find="return [transforms.RandomCrop(self.size), transforms.RandomHorizontalFlip()]",
           replace="return [transforms.RandomResizedCrop(self.size + 8), transforms.RandomHorizontalFlip()]",
           select="train_split", why="training crops of another size than the test images"),
    # -- simple_cnn.py -----------------------------------------------------------------------------
    Mutant("flat_dim_one_pool", "simple_cnn.py",
           find="self.flat_dim = 64 * (inp_size // 4) ** 2",
           replace="self.flat_dim = 64 * (inp_size // 2) ** 2",
           select="flat_dim", why="forgets one of the two poolings in flat_dim"),
    Mutant("flat_dim_channels", "simple_cnn.py",
           find="self.flat_dim = 64 * (inp_size // 4) ** 2",
           replace="self.flat_dim = 32 * (inp_size // 4) ** 2",
           select="flat_dim", why="counts conv1's 32 channels instead of conv2's 64"),
    Mutant("flat_dim_for_224", "simple_cnn.py",
           find="self.flat_dim = 64 * (inp_size // 4) ** 2",
           replace="self.flat_dim = 64 * 56 * 56",
           select="flat_dim", why="flat_dim written for 224 px images, not Q1's 64"),
    # -- trainer.py: the loss, inline in train() -----------------------------------------------------
    Mutant("loss_overflow", "trainer.py", find=ELEMENTWISE,
           replace="elementwise = torch.log1p(torch.exp(output)) - output * target",
           select="large_logits", why="log(1 + exp(x)) overflows to inf for large logits"),
    Mutant("loss_naive_sigmoid", "trainer.py", find=ELEMENTWISE,
           replace="elementwise = -(target * torch.log(1 / (1 + torch.exp(-output)))"
                   " + (1 - target) * torch.log(1 - 1 / (1 + torch.exp(-output))))",
           select="large_logits", why="log of a saturated sigmoid: -inf (and NaN gradients) for large logits"),
    Mutant("loss_ignores_weight", "trainer.py", find=LOSS,
           replace="            loss = elementwise.mean()\n",
           select="honours_weights", why="difficult entries still count"),
    Mutant("loss_weight_after_reduction", "trainer.py", find=LOSS,
           replace="            loss = elementwise.mean() * wgt.mean()\n",
           select="honours_weights", why="scales the loss by the mean weight instead of weighting each entry"),
    Mutant("loss_sum", "trainer.py", find=LOSS,
           replace="            loss = (elementwise * wgt).sum()\n",
           select="loss_values", why="sums instead of averaging"),
    Mutant("loss_mean_over_classes_summed_over_batch", "trainer.py", find=LOSS,
           replace="            loss = (elementwise * wgt).mean(1).sum()\n",
           select="loss_values", why="averages over the classes but sums over the batch"),
    Mutant("loss_sign", "trainer.py", find=ELEMENTWISE,
           replace="elementwise = positive_part + output * target + torch.log1p(torch.exp(-output.abs()))",
           select="loss_values", why="wrong sign of the x * y term"),
    Mutant("loss_labels_swapped", "trainer.py", find=ELEMENTWISE,
           replace="elementwise = positive_part - output * (1 - target) + torch.log1p(torch.exp(-output.abs()))",
           select="loss_values", why="treats the absent classes as the positives"),
    Mutant("loss_detached", "trainer.py", find=LOSS,
           replace="            loss = (elementwise * wgt).mean().detach().requires_grad_()\n",
           select="loss_values", why="detaches the loss: no gradient reaches the model"),
    Mutant("loss_builtin", "trainer.py", find=LOSS,
           replace="            loss = torch.nn.functional.binary_cross_entropy_with_logits(output, target, weight=wgt)\n",
           select="builtin", why="uses torch's BCE, which the handout forbids"),
    Mutant("loss_builtin_class", "trainer.py", find=LOSS,
           replace="            loss = torch.nn.BCELoss(weight=wgt)(torch.sigmoid(output), target)\n",
           select="builtin", why="uses torch.nn.BCELoss, which the handout forbids"),
    # -- train_q2.py -------------------------------------------------------------------------------
    Mutant("resnet_softmax_output", "train_q2.py", find="        return self.resnet(x)\n",
           replace="        return torch.softmax(self.resnet(x), dim=1)\n",
           select="raw_outputs", why="returns probabilities, not the raw outputs the starter asks for"),
    Mutant("resnet_sigmoid_output", "train_q2.py", find="        return self.resnet(x)\n",
           replace="        return torch.sigmoid(self.resnet(x))\n",
           select="raw_outputs", why="applies a sigmoid in forward (the loss applies its own)"),
    Mutant("resnet_head_1000_way", "train_q2.py", find=HEAD,
           replace="self.resnet.fc = nn.Linear(self.resnet.fc.in_features, 1000)",
           select="resnet_new_head or raw_outputs", why="a new head with ImageNet's 1000 outputs"),
    Mutant("resnet_random_init", "train_q2.py", find='torchvision.models.resnet18(weights="IMAGENET1K_V1")',
           replace="torchvision.models.resnet18(weights=None)",
           select="imagenet_weights", why="trains from scratch: no ImageNet weights"),
    Mutant("resnet_frozen_backbone", "train_q2.py", find=HEAD,
           replace="self.resnet.requires_grad_(False)\n        " + HEAD,
           select="gradients_reach", why="freezes the backbone: no gradient histograms for its layers"),
    Mutant("resnet_squeeze", "train_q2.py", find="        return self.resnet(x)\n",
           replace="        return self.resnet(x).squeeze()\n",
           select="single_image", why="squeezes the batch dimension away for one image"),
    # -- issue 22: paths and values the suite did not reach -------------------------------------------
    Mutant("resnet_forward_skips_maxpool", "train_q2.py", find="        return self.resnet(x)\n",
           replace="        r = self.resnet\n"
                   "        x = r.relu(r.bn1(r.conv1(x)))\n"
                   "        x = r.layer4(r.layer3(r.layer2(r.layer1(x))))\n"
                   "        return r.fc(torch.flatten(r.avgpool(x), 1))\n",
           select="raw_outputs", why="a hand-written forward that leaves out the max-pool after conv1 (shapes, "
                                     "weights and gradients unchanged; before issue 22 it kept every point)"),
    Mutant("resnet_forward_no_relu", "train_q2.py", find="        return self.resnet(x)\n",
           replace="        r = self.resnet\n"
                   "        x = r.maxpool(r.bn1(r.conv1(x)))\n"
                   "        x = r.layer4(r.layer3(r.layer2(r.layer1(x))))\n"
                   "        return r.fc(torch.flatten(r.avgpool(x), 1))\n",
           select="raw_outputs", why="a hand-written forward without the ReLU after bn1 (before issue 22 it kept "
                                     "every point)"),
    Mutant("ap_tie_break_in_place", "metrics.py",
           find="    gt = np.asarray(gt.detach().cpu() if isinstance(gt, torch.Tensor) else gt, dtype=np.float64)\n",
           replace="    gt = np.asarray(gt.detach().cpu() if isinstance(gt, torch.Tensor) else gt, dtype=np.float64)\n"
                   "    if not isinstance(pred, torch.Tensor):\n"
                   "        pred -= 1e-5 * gt  # PhilK's tie-break, as the starter's compute_ap, on the caller's array\n",
           select="compute_ap_matches", profile="extended",
           why="the starter's tie-break `pred -= 1e-5 * gt` applied to the caller's whole array: the APs are right, "
               "the caller's scores change (before issue 22 it kept every point)"),
    Mutant("ap_macro_ignored", "metrics.py",
           find='    if average == "macro":\n        return float(np.nanmean(ap)) if np.isfinite(ap).any() else float("nan")\n',
           replace="",
           select="compute_ap_macro", profile="extended",
           why="average='macro' accepted but ignored: the per-class array comes back (never called before issue 22)"),
    Mutant("eval_map_mean_with_nan", "metrics.py",
           find='mean_ap = float(np.nanmean(ap)) if np.isfinite(ap).any() else float("nan")',
           replace="mean_ap = float(np.mean(ap))",
           select="eval_dataset_map", profile="extended",
           why="np.mean over the APs: one class without a positive makes the mAP NaN (before issue 22 every class "
               "had one)"),
    Mutant("eval_squeezed_batch", "metrics.py",
           find="            output = model(data.to(device))\n",
           replace="            output = model(data.to(device)).squeeze()\n",
           select="eval_dataset_map", profile="extended",
           why="squeezes the logits: a last batch of one image loses its batch dimension (before issue 22 no batch "
               "held one image)"),
    Mutant("filter_grid_normalised_in_place", "analysis.py",
           find="    return torchvision.utils.make_grid(weight.clone(), nrow=nrow, padding=padding, normalize=True,\n"
                "                                       scale_each=True, pad_value=1.0)\n",
           replace="    flat = weight.view(weight.shape[0], -1)\n"
                   "    flat -= flat.min(1, keepdim=True).values\n"
                   "    flat /= flat.max(1, keepdim=True).values.clamp(min=1e-12)\n"
                   "    return torchvision.utils.make_grid(weight, nrow=nrow, padding=padding, pad_value=1.0)\n",
           select="filter_grid", profile="edition2020",
           why="min-max scales the filters in place through detach() / view(): the grid is right, the model's conv1 "
               "weights are overwritten (before issue 22 it kept every point)"),
    Mutant("neighbors_centred_in_place", "analysis.py",
           find='    query = query.detach().to("cpu", torch.float64)\n',
           replace="    centre = gallery.mean(0)\n    query -= centre\n    gallery -= centre\n"
                   '    query = query.detach().to("cpu", torch.float64)\n',
           select="nearest_neighbors", profile="edition2020",
           why="centres the features in place (distances unchanged, the caller's features shifted; before issue 22 "
               "it kept every point)"),
    Mutant("extract_mode_always_train", "analysis.py",
           find="        model.train(was_training)\n",
           replace="        model.train()\n",
           select="extract_features", profile="edition2020",
           why="'restores' the mode by always calling model.train(): a model in eval mode comes back training "
               "(before issue 22 it was only called in train mode)"),
    Mutant("caffenet_conv5_no_relu", "caffe_net.py",
           find="        return self.pool3(self.nonlinear(self.conv5(x)))\n",
           replace="        return self.pool3(self.conv5(x))\n",
           select="caffenet_forward_values", profile="edition2020",
           why="no ReLU after conv5 (shapes, counts and dropout unchanged; before issue 22 it kept every point)"),
    Mutant("caffenet_fc2_no_relu", "caffe_net.py",
           find='self.fc2 = nn.Sequential(*get_fc(4096, 4096, "relu"))',
           replace='self.fc2 = nn.Sequential(*get_fc(4096, 4096, "none"))',
           select="caffenet_forward_values", profile="edition2020",
           why="fc2 without its ReLU (before issue 22 it kept every point)"),
    # -- metrics.py (profile extended) -----------------------------------------------------------------------------
    Mutant("ap_ignores_valid", "metrics.py",
           find="kind = np.where(valid.T > 0, 1 + (gt.T > 0), 0).astype(np.int8)",
           replace="kind = (1 + (gt.T > 0)).astype(np.int8)",
           select="compute_ap", profile="extended", why="difficult (invalid) entries are counted"),
    Mutant("ap_ascending", "metrics.py",
           find="order = np.argsort(-np.ascontiguousarray(pred.T), axis=1)",
           replace="order = np.argsort(np.ascontiguousarray(pred.T), axis=1)",
           select="compute_ap", profile="extended", why="ranks the lowest scores first"),
    Mutant("ap_ties_split", "metrics.py",
           find="group_end = np.minimum.accumulate(np.where(last, np.arange(n, dtype=np.int32), n)[:, ::-1], axis=1)[:, ::-1]",
           replace="group_end = np.broadcast_to(np.arange(n), scores.shape)",
           select="compute_ap", profile="extended", why="tied scores are not entered together"),
    Mutant("ap_mean_precision", "metrics.py",
           find="ap = np.where(num_pos > 0, np.where(positive, precision, 0.0).sum(axis=1) / num_pos, np.nan)",
           replace="ap = np.where(num_pos > 0, precision.mean(axis=1), np.nan)",
           select="compute_ap", profile="extended", why="averages the precision over all rows (the seed's 'mean of precisions')"),
    Mutant("eval_softmax", "metrics.py",
           find="scores.append(torch.sigmoid(output).cpu())",
           replace="scores.append(torch.softmax(output, dim=-1).cpu())",
           select="eval_dataset_map", profile="extended", why="softmax over classes (the handout's bug)"),
    Mutant("eval_per_batch", "metrics.py",
           find="    ap = compute_ap(torch.cat(labels), torch.cat(scores), torch.cat(weights))\n",
           replace="    ap = np.nanmean([compute_ap(l, s, w) for l, s, w in zip(labels, scores, weights)], axis=0)\n",
           select="eval_dataset_map", profile="extended", why="AP per batch, averaged (the handout's bug)"),
    # -- analysis.py (profile edition2020) -------------------------------------------------------------------------
    Mutant("colors_sum_not_mean", "analysis.py",
           find="mean = active @ palette / counts.clamp(min=1)",
           replace="mean = (active @ palette).clamp(max=1)",
           select="label_colors", profile="edition2020", why="adds the class colours instead of averaging them"),
    Mutant("colors_black_default", "analysis.py",
           find="return torch.where(counts > 0, mean, torch.full_like(mean, 0.5))",
           replace="return mean",
           select="label_colors", profile="edition2020", why="images without classes are black, not grey"),
    Mutant("tsne_no_legend", "analysis.py",
           find='    ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)\n',
           replace="",
           select="plot_tsne", profile="edition2020", why="no legend"),
    Mutant("tsne_unseeded", "analysis.py",
           find='TSNE(n_components=2, perplexity=p, init="pca", random_state=seed)',
           replace='TSNE(n_components=2, perplexity=p, init="random")',
           select="tsne_embedding", profile="edition2020", why="ignores the seed: embeddings change between calls"),
    Mutant("filter_grid_global_scale", "analysis.py",
           find="scale_each=True, pad_value=1.0)\n    # END SOLUTION",
           replace="scale_each=False, pad_value=1.0)\n    # END SOLUTION",
           select="filter_grid", profile="edition2020", why="scales all filters together instead of each on its own"),
    Mutant("neighbors_farthest", "analysis.py",
           find="distances, indices = torch.sort(squared, dim=1, stable=True)",
           replace="distances, indices = torch.sort(squared, dim=1, descending=True, stable=True)",
           select="nearest_neighbors", profile="edition2020", why="returns the farthest rows"),
    Mutant("neighbors_squared_distance", "analysis.py",
           find="return indices[:, :k], distances[:, :k].sqrt()",
           replace="return indices[:, :k], distances[:, :k]",
           select="nearest_neighbors", profile="edition2020", why="returns squared distances"),
    Mutant("extract_train_mode", "analysis.py",
           find="    was_training = model.training\n    model.eval()\n",
           replace="    was_training = model.training\n",
           select="extract_features", profile="edition2020", why="extracts with dropout active"),
    Mutant("extract_hook_kept", "analysis.py",
           find="        handle.remove()\n",
           replace="        pass\n",
           select="extract_features", profile="edition2020", why="leaves the forward hook registered"),
    # -- caffe_net.py (profile edition2020) ------------------------------------------------------------------------
    Mutant("caffenet_conv1_padding", "caffe_net.py",
           find="self.conv1 = nn.Conv2d(c_dim, 96, 11, stride=4, padding=0)",
           replace="self.conv1 = nn.Conv2d(c_dim, 96, 11, stride=4, padding=2)",
           select="caffenet_other_sizes", profile="edition2020", why="'same'-style padding on conv1 (flat_dim no longer matches)"),
    Mutant("caffenet_dropout_always", "caffe_net.py",
           find="out = self.dropout1(self.fc1(flat_x))",
           replace="out = torch.nn.functional.dropout(self.fc1(flat_x), 0.5, training=True)",
           select="dropout", profile="edition2020", why="dropout also at evaluation time"),
    Mutant("caffenet_flat_dim_227_only", "caffe_net.py",
           find="self.flat_dim = 256 * side * side",
           replace="self.flat_dim = 256 * 6 * 6",
           select="other_sizes", profile="edition2020", why="flat_dim hard-coded for 227 x 227"),
    Mutant("rename_shortest_prefix", "caffe_net.py",
           find="prefix = max(matches, key=len)",
           replace="prefix = min(matches, key=len)",
           select="load_pretrained", profile="edition2020", why="the shortest matching prefix wins"),
    Mutant("load_report_missing_wrong", "caffe_net.py",
           find='"missing": sorted(k for k in target if k not in done),',
           replace='"missing": [],',
           select="load_pretrained", profile="edition2020", why="never reports model keys that were not loaded"),
    # -- per-element Python loop (correct results; caught by the hidden speed test) ----------------
    Mutant("compute_ap_per_row_loop", "metrics.py",
           find="""    n, num_classes = gt.shape
    if n == 0:
        ap = np.full(num_classes, np.nan)
    else:
""",
           replace="""    n, num_classes = gt.shape
    ap = np.full(num_classes, np.nan)
    for c in range(num_classes):
        rows = sorted((i for i in range(n) if valid[i, c] > 0), key=lambda i: -pred[i, c])
        total = sum(1 for i in rows if gt[i, c] > 0)
        if total == 0:
            continue
        tp = fp = 0
        area = previous = 0.0
        k = 0
        while k < len(rows):
            j = k
            while j < len(rows) and pred[rows[j], c] == pred[rows[k], c]:
                if gt[rows[j], c] > 0:
                    tp += 1
                else:
                    fp += 1
                j += 1
            area += (tp / total - previous) * tp / (tp + fp)
            previous = tp / total
            k = j
        ap[c] = area
    if False:
""",
           select="speed and compute_ap", profile="extended", why="one Python iteration per (row, class) entry"),
]
