#!/usr/bin/env python3
"""Train a small text model in dddd_trainer's format for one captcha style: the images of the
`captcha` package's ImageCaptcha (the "lib" style of tests/fixtures/captcha), which ddddocr's
stock models read badly.

A one-time script: its output is committed under tests/fixtures/trained-lib/ and is not
rebuilt by the set-up or the tests. It needs torch (CPU is enough), captcha, Pillow, numpy
and onnx in a scratch virtualenv outside the repository (see scripts/train/README.md).

usage:
  lib_style.py train OUT_DIR [--train N] [--epochs E] [--seed S] [--fixtures DIR]
  lib_style.py held-out OUT_DIR [--count N] [--seed S]

`train` writes OUT_DIR/lib.onnx and OUT_DIR/charsets.json (dddd_trainer's format: charset with
the CTC blank "" at index 0, word, image, channel) and prints the accuracy on freshly generated
images after each epoch and, with --fixtures, on the "lib" rows of a fixture manifest.
`held-out` writes labelled images of the style (PNG, JPEG, GIF, RGBA PNG, BMP as the fixtures'
generator encodes them) and OUT_DIR/manifest.tsv (file, label, format).

The model's input is what ddddocr's import path feeds a model whose charsets.json says
`image: [-1, 32], channel: 1`: the decoded image resized to height 32 keeping its aspect
(Pillow's LANCZOS, width int(w * 32 / h)), converted to gray, divided by 255, laid out
[1, 1, 32, W]. The output is [steps, 1, classes] scores, as ddddocr's own models return them.
"""
import argparse
import io
import json
import os
import random
import string
import sys
import time

import numpy as np
from PIL import Image

HEIGHT = 32
CHARSET = [""] + list(string.ascii_lowercase + string.digits)
INDEX = {c: i for i, c in enumerate(CHARSET)}
# The sizes, label lengths and encodings of the fixtures' generator (shared tools/make_captchas.py).
SIZES = [(160, 60), (130, 50), (200, 70)]
LENGTHS = [4, 4, 5, 6]
FORMATS = ["png", "jpeg", "gif", "png_rgba", "bmp"]
FORMAT_WEIGHTS = [5, 2, 1, 1, 1]


class SeededSecrets:
    """ImageCaptcha (captcha 0.7.1) draws every random choice from `secrets`, which cannot be
    seeded; this stands in for it so that a seed gives the same images on every run."""

    def __init__(self, rng):
        self.rng = rng

    def randbelow(self, n):
        return self.rng.randrange(n)

    def randbits(self, k):
        return self.rng.getrandbits(k)

    def choice(self, seq):
        return self.rng.choice(seq)


def encode(image, kind, rng):
    """The file a client would send, as the fixtures' generator writes it: (bytes, extension)."""
    buffer = io.BytesIO()
    if kind == "png_rgba":
        # Near-white pixels transparent, as in the fixtures (their colour kept under alpha 0).
        rgba = image.convert("RGBA")
        pixels = np.array(rgba)
        bright = (pixels[:, :, :3] > 190).all(axis=2)
        pixels[bright, 3] = 0
        Image.fromarray(pixels, "RGBA").save(buffer, "PNG")
        return buffer.getvalue(), "png"
    if kind == "gif":
        image.convert("P", palette=Image.ADAPTIVE).save(buffer, "GIF")
        return buffer.getvalue(), "gif"
    if kind == "jpeg":
        image.convert("RGB").save(buffer, "JPEG", quality=rng.choice([60, 80, 95]))
        return buffer.getvalue(), "jpg"
    if kind == "bmp":
        image.convert("RGB").save(buffer, "BMP")
        return buffer.getvalue(), "bmp"
    image.save(buffer, "PNG")
    return buffer.getvalue(), "png"


def preprocess(data):
    """ddddocr 1.6.1's _preprocess_image for image [-1, HEIGHT], channel 1, on the file's bytes
    (opened as ddddocr opens them: a GIF stays a palette image, which Pillow resizes NEAREST)."""
    image = Image.open(io.BytesIO(data))
    width = int(image.size[0] * (HEIGHT / image.size[1]))
    image = image.resize((width, HEIGHT), Image.LANCZOS).convert("L")
    return np.asarray(image, dtype=np.float32) / 255.0


def captchas(count, seed):
    """count (bytes, extension, format, label) of the style; the same seed, the same files."""
    from captcha import image as captcha_image

    rng = random.Random(seed)
    captcha_image.secrets = SeededSecrets(rng)
    makers = {size: captcha_image.ImageCaptcha(width=size[0], height=size[1]) for size in SIZES}
    alphabet = CHARSET[1:]
    for _ in range(count):
        size = rng.choice(SIZES)
        label = "".join(rng.choice(alphabet) for _ in range(rng.choice(LENGTHS)))
        kind = rng.choices(FORMATS, FORMAT_WEIGHTS)[0]
        data, extension = encode(makers[size].generate_image(label), kind, rng)
        yield data, extension, kind, label


def samples(count, seed):
    return [(preprocess(data), label) for data, _, _, label in captchas(count, seed)]


def make_net(classes):
    import torch

    class Net(torch.nn.Module):
        """A small CRNN: four conv blocks (height 32 -> 2, width / 4), a BiGRU, a classifier."""

        def __init__(self):
            super().__init__()

            def block(cin, cout, pool):
                return [
                    torch.nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                    torch.nn.BatchNorm2d(cout),
                    torch.nn.ReLU(),
                    torch.nn.MaxPool2d(pool),
                ]

            self.cnn = torch.nn.Sequential(
                *block(1, 16, 2), *block(16, 32, 2), *block(32, 48, (2, 1)), *block(48, 48, (2, 1))
            )
            self.rnn = torch.nn.GRU(48 * 2, 48, bidirectional=True)
            self.fc = torch.nn.Linear(96, classes)

        def forward(self, x):
            features = self.cnn(x)  # [B, C, 2, W/4]
            b, c, h, w = features.shape
            steps = features.permute(3, 0, 1, 2).reshape(w, b, c * h)  # [T, B, C*H]
            out, _ = self.rnn(steps)
            return self.fc(out)  # [T, B, classes]

    return Net()


def batches(items, size, rng):
    """Batches of equal-width images (the three sizes give three widths), shuffled."""
    by_width = {}
    for tensor, label in items:
        by_width.setdefault(tensor.shape[1], []).append((tensor, label))
    out = []
    for group in by_width.values():
        rng.shuffle(group)
        out.extend(group[i : i + size] for i in range(0, len(group), size))
    rng.shuffle(out)
    return out


def to_tensors(batch):
    import torch

    images = torch.from_numpy(np.stack([t for t, _ in batch]))[:, None]
    targets = torch.tensor([INDEX[c] for _, label in batch for c in label])
    lengths = torch.tensor([len(label) for _, label in batch])
    return images, targets, lengths


def decode(indices):
    """ddddocr's CTC decoding: argmax per step, repeats and blanks dropped."""
    text, previous = [], None
    for index in indices:
        if index != previous and index != 0:
            text.append(CHARSET[index])
        previous = index
    return "".join(text)


def accuracy(net, items):
    """Whole answers equal to the label, over items (tensor, label), batched by width."""
    import torch

    net.eval()
    right = 0
    with torch.no_grad():
        for batch in batches(items, 256, random.Random(0)):
            images, _, _ = to_tensors(batch)
            best = net(images).argmax(-1).T.tolist()  # [B, T]
            right += sum(decode(row) == label for row, (_, label) in zip(best, batch))
    net.train()
    return right, len(items)


def fixture_items(directory):
    import csv

    items = []
    with open(os.path.join(directory, "manifest.tsv")) as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if row["style"] == "lib":
                with open(os.path.join(directory, row["file"]), "rb") as image:
                    items.append((preprocess(image.read()), row["label"]))
    return items


def train(args):
    import torch

    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(args.seed)
    # One thread: on a shared 2-core machine torch's pool threads spin and slow everyone.
    torch.set_num_threads(1)
    rng = random.Random(args.seed)
    started = time.time()
    training = samples(args.train, args.seed)
    # Images of the same style from another seed, never trained on.
    check = samples(500, args.seed + 1)
    print(f"generated {len(training)} + {len(check)} images in {time.time() - started:.0f} s", flush=True)
    net = make_net(len(CHARSET))
    print(f"{sum(p.numel() for p in net.parameters())} parameters", flush=True)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    steps_per_epoch = len(batches(training, args.batch, random.Random(0)))
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch, pct_start=0.15
    )
    ctc = torch.nn.CTCLoss(blank=0, zero_infinity=True)
    for epoch in range(args.epochs):
        total, count = 0.0, 0
        for batch in batches(training, args.batch, rng):
            images, targets, lengths = to_tensors(batch)
            scores = net(images).log_softmax(2)
            steps = torch.full((len(batch),), scores.shape[0], dtype=torch.long)
            loss = ctc(scores, targets, steps, lengths)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total, count = total + loss.item(), count + 1
        right, n = accuracy(net, check)
        print(f"epoch {epoch + 1}: loss {total / count:.3f}, held-out {right}/{n}, "
              f"{time.time() - started:.0f} s", flush=True)
        # Written after every epoch, so that a run cut short still leaves its last model.
        export(net, args.out)
        net.train()
    if args.fixtures:
        right, n = accuracy(net, fixture_items(args.fixtures))
        print(f"fixtures ({args.fixtures}, style lib): {right}/{n}", flush=True)


def export(net, out):
    """ONNX as the platform checks it: input [1, 1, 32, width], output [steps, 1, classes]."""
    import torch

    net.eval()
    sample = torch.zeros(1, 1, HEIGHT, 85)
    path = os.path.join(out, "lib.onnx")
    torch.onnx.export(
        net, (sample,), path, input_names=["input1"], output_names=["output"],
        dynamic_axes={"input1": {3: "width"}, "output": {0: "steps"}},
        opset_version=17, dynamo=False,
    )
    charsets = {"charset": CHARSET, "word": False, "image": [-1, HEIGHT], "channel": 1}
    with open(os.path.join(out, "charsets.json"), "w") as f:
        json.dump(charsets, f, ensure_ascii=False)
    print(f"wrote {path} ({os.path.getsize(path)} bytes) and charsets.json", flush=True)


def held_out(args):
    os.makedirs(args.out, exist_ok=True)
    rows = []
    for i, (data, extension, kind, label) in enumerate(captchas(args.count, args.seed)):
        name = f"{i:03d}.{extension}"
        with open(os.path.join(args.out, name), "wb") as f:
            f.write(data)
        rows.append((name, label, kind))
    with open(os.path.join(args.out, "manifest.tsv"), "w") as f:
        f.write("file\tlabel\tformat\n")
        f.writelines("\t".join(row) + "\n" for row in rows)
    print(f"wrote {len(rows)} images and manifest.tsv in {args.out}")


def main():
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    learn = commands.add_parser("train")
    learn.add_argument("out")
    learn.add_argument("--train", type=int, default=20000)
    learn.add_argument("--epochs", type=int, default=10)
    learn.add_argument("--batch", type=int, default=64)
    learn.add_argument("--lr", type=float, default=3e-3)
    learn.add_argument("--seed", type=int, default=23)
    learn.add_argument("--fixtures")
    hold = commands.add_parser("held-out")
    hold.add_argument("out")
    hold.add_argument("--count", type=int, default=80)
    hold.add_argument("--seed", type=int, default=2023)
    args = parser.parse_args()
    if args.command == "train":
        train(args)
    else:
        held_out(args)


if __name__ == "__main__":
    sys.exit(main())
