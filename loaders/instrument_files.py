"""The built-in instrument-file loaders, registered as a plugin like any other.

ncempy first (the facility's own reader), tifffile and Pillow for exported
images, RosettaSciIO for the vendor formats ncempy cannot read.
"""

from datasette_scisearch.hookspecs import hookimpl

from .ncempy_formats import EMDLoader, GatanDMLoader, MRCLoader, TiaEmiLoader, TiaSerLoader
from .rosettasciio_formats import RosettaSciIOLoader
from .tiff_images import ExportedImageLoader, TiffLoader


@hookimpl
def register_loaders(register):
    for loader in (
        TiaSerLoader(),
        TiaEmiLoader(),
        GatanDMLoader(),
        EMDLoader(),
        MRCLoader(),
        TiffLoader(),
        ExportedImageLoader(),
        RosettaSciIOLoader(),
    ):
        register(loader)
