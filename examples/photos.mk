# Keep an ASMK index of a photo folder up to date (GNU make 4, bash, xxhsum).
#
#   make -f photos.mk PHOTOS=$HOME/Pictures MODEL=fire.pth [INDEX=photos.six]
#
# Run it again whenever you like: only the photos added, changed or deleted
# since the last run are processed.  A photo counts as changed when its
# content does (xxHash), so one that is merely touched or copied over with
# the same bytes is not extracted again.  Variables:
#
#   PHOTOS    the photo folder, searched recursively for EXTENSIONS (hidden
#             files and folders are left out); the index keys are the paths
#             relative to it, e.g. 2024/june/beach.jpg
#   MODEL     the FIRe checkpoint (fire.pth or sf-model's native format)
#   INDEX     the index to keep (default photos.six); it is this Makefile's:
#             keys that are not photos of PHOTOS are removed from it
#   CODEBOOK  the codebook; empty (the default): train one from the
#             features of the first TRAIN_PHOTOS photos on the first run, and
#             keep it: an index can only ever be used with its own codebook
#   STATE     the per-photo hashes and features (default INDEX.d)
#   CONFIG    settings preset (default fire.yaml next to this file: the
#             official ones, 1024 pixels, 7 scales, 65536 words)
#   EXTENSIONS  the photos' file name extensions, any case (default jpg
#             jpeg png tif tiff webp)
#   TRAIN_PHOTOS  most photos to train the codebook on (default 10000)
#   DECODE_FLAGS, EXTRACT_FLAGS, LIT_FLAGS, CODEBOOK_FLAGS, CREATE_FLAGS:
#             more options for sf-decode, sf-extract, sf-lit, sf-codebook and
#             sf-index create, e.g. DECODE_FLAGS='--size 512'
#   WRITE_FLAGS  options for sf-index add and remove, e.g. --no-wait
#   SF_BIN    where the sf programs are, if not on PATH
#
# Targets: all (the default), compact (sf-index compact), clean (delete the
# index and STATE).  make -j N extracts N photos at a time; add
# EXTRACT_FLAGS='--threads 1' LIT_FLAGS='--threads 1' when N is the number
# of cores.
#
# After changing MODEL, the settings or the codebook, run `make clean` first:
# features of two models do not mix.  A photo that fails to decode stops the
# update (nothing is lost; fix or remove it and run again).  A photo is only
# hashed when its mtime is newer than at the last run: one replaced by an
# older file that keeps its mtime (cp -p, mv, rsync -t) goes unseen until
# touched.  Photo names with blanks, quotes or any of \ # $ % : ; * ? ( ) [ ]
# = cannot be make targets: they are skipped with a warning.  The other
# paths must not have blanks either.

here := $(dir $(lastword $(MAKEFILE_LIST)))
# bash for pipefail: a photo that sf-decode fails on must fail, not get an
# empty feature file.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec
MAKEFLAGS += --no-builtin-rules
.SUFFIXES:
# The per-photo files are made by chains of pattern rules: keep them all.
.SECONDARY:

PHOTOS ?=
MODEL ?=
INDEX ?= photos.six
CODEBOOK ?=
STATE ?= $(INDEX).d
CONFIG ?= $(here)fire.yaml
EXTENSIONS ?= jpg jpeg png tif tiff webp
TRAIN_PHOTOS ?= 10000
ifneq ($(SF_BIN),)
export PATH := $(SF_BIN):$(PATH)
endif

ifeq ($(PHOTOS),)
$(error PHOTOS is not set: make -f photos.mk PHOTOS=DIR MODEL=FILE)
endif
P := $(abspath $(PHOTOS))
S := $(abspath $(STATE))
CFG := $(if $(CONFIG),--config '$(abspath $(CONFIG))')

# Photos, as paths relative to P, in a stable order.  The names make cannot
# take are only counted.
find_photos := cd '$(P)' && find . ! -path '*/.*' -type f \
	\( $(foreach e,$(EXTENSIONS),-iname '*.$e' -o) -false \) | sed 's|^\./||'
odd_name := LC_ALL=C grep -e '[][[:space:]\#"$$%:;*?()=]' -e "'"
PHOTO_LIST := $(shell $(find_photos) | $(odd_name) -v | LC_ALL=C sort)
SKIPPED := $(shell $(find_photos) | $(odd_name) -c)
ifneq ($(SKIPPED),0)
$(warning photos.mk: skipping $(SKIPPED) photos whose names make cannot handle)
endif
FEATURES := $(PHOTO_LIST:%=$(S)/feat/%.sfs)

ifeq ($(CODEBOOK),)
CB := $(S)/codebook.sfcb
else
CB := $(CODEBOOK)
endif

.PHONY: all compact clean FORCE
all: $(S)/indexed

# A photo newer than its .seen stamp is hashed again, but its .xxh is
# rewritten only when the hash differs: the features depend on the .xxh.
$(S)/sum/%.seen: $(P)/%
	@mkdir -p '$(@D)'
	@xxhsum -H2 < '$<' > '$@.tmp'
	@mv '$@.tmp' '$@'
	@cmp -s '$@' '$(S)/sum/$*.xxh' || cp '$@' '$(S)/sum/$*.xxh'
$(S)/sum/%.xxh: $(S)/sum/%.seen ;

# One photo at a time, so that make -j spreads them and a change costs one
# extraction.  Decoding from inside P makes the key the relative path.
$(S)/feat/%.sfs: $(S)/sum/%.xxh
	@$(if $(MODEL),,echo 'photos.mk: MODEL is not set' >&2; exit 2)
	@mkdir -p '$(@D)'
	@echo 'extract $*'
	@(cd '$(P)' && sf-decode -q $(CFG) $(DECODE_FLAGS) '$*') | \
	  sf-extract -q -m '$(MODEL)' $(CFG) $(EXTRACT_FLAGS) | \
	  sf-lit -q -m '$(MODEL)' $(CFG) $(LIT_FLAGS) > '$@.tmp'
	@mv '$@.tmp' '$@'

# Trained once: only on the features there are when it is first needed.
# (The lists go through files: a recipe line is limited to 128 KiB.)
$(S)/codebook.sfcb: | $(FEATURES)
	@$(if $(FEATURES),,echo 'photos.mk: no photos to train a codebook on' >&2; exit 1)
	$(file >$@.list,$(wordlist 1,$(TRAIN_PHOTOS),$(FEATURES)))
	@echo 'train $@'
	@tr ' ' '\n' < '$@.list' | xargs cat | \
	  sf-codebook -q $(CFG) $(CODEBOOK_FLAGS) -o '$@.tmp'
	@rm -f '$@.list'
	@mv '$@.tmp' '$@'

$(INDEX): | $(CB)
	@echo 'create $@'
	@sf-index create -q $(CFG) $(CREATE_FLAGS) -C '$(CB)' '$@'

# The photo list is rewritten only when photos come or go.
$(S)/photos.list: FORCE
	@mkdir -p '$(@D)'
	@$(find_photos) | $(odd_name) -v | LC_ALL=C sort > '$@.tmp'
	@if cmp -s '$@.tmp' '$@'; then rm '$@.tmp'; else mv '$@.tmp' '$@'; fi

# Bring the index in line with the photos: remove the keys of photos that
# are gone (and their state), add the features that changed since the last
# run and those of photos the index lacks (a new index, an earlier run that
# failed half-way: adding a key again replaces it).
$(S)/indexed: $(FEATURES) $(S)/photos.list $(INDEX)
	$(file >$@.changed,$(filter %.sfs,$?))
	@sf-index list '$(INDEX)' | LC_ALL=C sort > '$@.keys'
	@LC_ALL=C comm -23 '$@.keys' '$(S)/photos.list' > '$@.gone'
	@if [ -s '$@.gone' ]; then \
	  echo "remove $$(wc -l < '$@.gone') photos from $(INDEX)"; \
	  sf-index remove -q $(WRITE_FLAGS) '$(INDEX)' --keys-from '$@.gone'; \
	  awk -v s='$(S)' '{ print s "/feat/" $$0 ".sfs"; print s "/sum/" $$0 ".xxh"; \
	    print s "/sum/" $$0 ".seen" }' '$@.gone' | xargs rm -f; \
	fi
	@{ tr ' ' '\n' < '$@.changed'; \
	   LC_ALL=C comm -13 '$@.keys' '$(S)/photos.list' | \
	     awk -v s='$(S)' '{ print s "/feat/" $$0 ".sfs" }'; } | \
	  sed '/^$$/d' | LC_ALL=C sort -u > '$@.add'
	@if [ -s '$@.add' ]; then \
	  echo "add $$(wc -l < '$@.add') photos to $(INDEX)"; \
	  xargs sf-index add -q $(WRITE_FLAGS) '$(INDEX)' < '$@.add'; \
	fi
	@rm -f '$@.changed' '$@.keys' '$@.gone' '$@.add'
	@touch '$@'

compact:
	sf-index compact $(WRITE_FLAGS) '$(INDEX)'

clean:
	rm -rf '$(S)' '$(INDEX)'
