# stub: torchvision CPU wheel for torch 2.13 unavailable; vendored timm only imports it for data transforms (unused here)
