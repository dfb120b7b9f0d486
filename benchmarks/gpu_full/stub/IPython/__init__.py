"""A stand-in for IPython where there is no Jupyter (the GPU machine): display prints text."""
version_info = (8, 24)   # matplotlib reads it when IPython has been imported


def get_ipython():
    return None
