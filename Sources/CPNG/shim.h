// libpng (Debian: libpng-dev), used to read and write PNG images.
#include <png.h>
