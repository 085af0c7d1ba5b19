# The guide's worked example (models/README.md): a small custom PyTorch model, the kind of class a
# user trains. models/examples/my_net.lua describes it for foldc.
import torch
from torch import nn


def conv_bn(cin, cout, kernel, stride, padding):
    m = nn.Sequential()
    m.add_module('conv', nn.Conv2d(cin, cout, kernel, stride, padding, bias=False))
    m.add_module('bn', nn.BatchNorm2d(cout))
    return m


class RepVGGBlock(nn.Module):
    """DingXiaoH/RepVGG's block, training form: 3x3 conv-BN + 1x1 conv-BN + identity BN, then ReLU."""

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.rbr_identity = nn.BatchNorm2d(cin) if cin == cout and stride == 1 else None
        self.rbr_dense = conv_bn(cin, cout, 3, stride, 1)
        self.rbr_1x1 = conv_bn(cin, cout, 1, stride, 0)

    def forward(self, x):
        y = self.rbr_dense(x) + self.rbr_1x1(x)
        if self.rbr_identity is not None:
            y = y + self.rbr_identity(x)
        return torch.relu(y)


class Head(nn.Module):
    def __init__(self, cin, hidden, num_classes):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.mlp = nn.Sequential(
            nn.Linear(cin, hidden),
            nn.GELU(),
            nn.Dropout(0.2),
            nn.Linear(hidden, num_classes))

    def forward(self, x):
        return self.mlp(torch.flatten(self.pool(x), 1))


class MyNet(nn.Module):
    def __init__(self, width=16, hidden=32, num_classes=10):
        super().__init__()
        self.stem = conv_bn(3, width, 3, stride=2, padding=1)
        self.block1 = RepVGGBlock(width, 2 * width, stride=2)
        self.block2 = RepVGGBlock(2 * width, 2 * width)
        self.head = Head(2 * width, hidden, num_classes)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        return self.head(self.block2(self.block1(x)))
