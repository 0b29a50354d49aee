# Keep an ASMK index of a photo folder up to date (GNU make, bash, xxhsum).
#
#   make -f photos.mk PHOTOS=$HOME/Pictures MODEL=fire.pth [INDEX=photos.six]
#
# Run it again whenever you like: only the photos added, changed or deleted
# since the last run are processed.  A photo counts as changed when its
# content does (xxHash), so one that is merely touched or copied over with
# the same bytes is not extracted again.  The work is sf-search's (see
# sf-search(1)); this Makefile names the folder, the index and the
# settings once, and adds the compact and clean targets.  Variables:
#
#   PHOTOS    the photo folder, searched recursively for .jpg .jpeg .png
#             .tif .tiff .webp in any case (hidden files and folders are
#             left out); the index keys are the paths relative to it, e.g.
#             2024/june/IMG (1).jpg.  Any file name works.
#   MODEL     the FIRe checkpoint (fire.pth or sf-model's native format);
#             may instead be named by the preset (compute.model)
#   INDEX     the index to keep (default photos.six); it is this Makefile's:
#             keys that are not photos of PHOTOS are removed from it
#   CODEBOOK  the codebook of a new index; empty (the default): train one on
#             the photos' features on the first run, and keep it (an index
#             can only ever be used with its own codebook).  Its size
#             follows the number of descriptors (sf-codebook(1)).
#   STATE     the photos' hashes, failures and the codebook (default INDEX.d)
#   CONFIG    settings preset (default fire.yaml next to this file: the
#             official settings; the model's own image size and number of
#             super-features)
#   SETTINGS  more settings for every program, e.g.
#             SETTINGS='--set image.size=512 --set asmk.codebook_size=1024'
#   WRITE_FLAGS  --no-wait: fail at once when another program writes INDEX
#   SF_BIN    where the sf programs are, if not on PATH
#
# Targets: all (the default), compact (sf-index compact), clean (delete the
# index and STATE).
#
# Output, one line per photo: add, replace, remove, fail (it failed now)
# or skip (it failed before and has not changed: it is tried again once
# its content changes).  A photo that fails never stops the others; make
# then exits non-zero all the same, so that the failure is seen.
#
# After changing MODEL or the settings, run `make clean` first: features
# of two models do not mix (sf-index refuses them).

SHELL := /bin/bash
MAKEFLAGS += --no-builtin-rules
.SUFFIXES:

here := $(dir $(lastword $(MAKEFILE_LIST)))
PHOTOS ?=
MODEL ?=
INDEX ?= photos.six
CODEBOOK ?=
STATE ?= $(INDEX).d
CONFIG ?= $(here)fire.yaml
SETTINGS ?=
WRITE_FLAGS ?=
ifneq ($(SF_BIN),)
export PATH := $(SF_BIN):$(PATH)
endif

ifeq ($(PHOTOS),)
$(error PHOTOS is not set: make -f photos.mk PHOTOS=DIR MODEL=FILE)
endif

# q: a value quoted for the shell, whatever characters it holds.
q = '$(subst ','\'',$(1))'

.PHONY: all compact clean
all:
	@sf-search index $(if $(CONFIG),--config $(call q,$(CONFIG))) \
	  $(if $(MODEL),--model $(call q,$(MODEL))) \
	  $(if $(CODEBOOK),--codebook $(call q,$(CODEBOOK))) \
	  --state $(call q,$(STATE)) $(SETTINGS) $(WRITE_FLAGS) -- \
	  $(call q,$(PHOTOS)) $(call q,$(INDEX))

compact:
	sf-index compact $(WRITE_FLAGS) $(call q,$(INDEX))

clean:
	rm -rf -- $(call q,$(STATE)) $(call q,$(INDEX))
