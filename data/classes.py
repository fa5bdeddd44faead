"""CIFAR-10's class names, in label order (0..9)."""

CLASSES: tuple[str, ...] = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
LABEL_OF: dict[str, int] = {name: label for label, name in enumerate(CLASSES)}
SPLITS: tuple[str, ...] = ("train", "test")
