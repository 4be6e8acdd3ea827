# tcpipctl: build, test, demo, install.
#   make demo                       start a hub and a receiver on loopback, send a message and files, stop them
#   make test                       the test command CI runs
#   make install PREFIX=/usr/local DESTDIR=/tmp/stage
#   make docs                       regenerate man/ and completions/ from the command definitions

PREFIX ?= /usr/local
DESTDIR ?=
BINDIR = $(DESTDIR)$(PREFIX)/bin
MANDIR = $(DESTDIR)$(PREFIX)/share/man
BASHDIR = $(DESTDIR)$(PREFIX)/share/bash-completion/completions
ZSHDIR = $(DESTDIR)$(PREFIX)/share/zsh/site-functions
FISHDIR = $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
PROGRAMS = tcpipd tcpipctl tcpiprecvd
SWIFT ?= swift
# CONFIG=debug installs the debug build; NOBUILD=1 installs what is already built.
CONFIG ?= release

.PHONY: all build debug release test demo install uninstall docs check-docs clean

all: build

build debug:
	$(SWIFT) build

release:
	$(SWIFT) build -c release --static-swift-stdlib

test:
	scripts/test

demo: build
	scripts/demo

docs: build
	scripts/generate-docs

check-docs: build
	scripts/check-docs

install: $(if $(NOBUILD),,$(CONFIG))
	install -d $(BINDIR) $(MANDIR)/man1 $(MANDIR)/man8 $(BASHDIR) $(ZSHDIR) $(FISHDIR)
	for p in $(PROGRAMS); do install -m 0755 .build/$(CONFIG)/$$p $(BINDIR)/$$p; done
	install -m 0644 man/tcpipctl.1 $(MANDIR)/man1/tcpipctl.1
	install -m 0644 man/tcpipd.8 $(MANDIR)/man8/tcpipd.8
	install -m 0644 man/tcpiprecvd.8 $(MANDIR)/man8/tcpiprecvd.8
	for p in $(PROGRAMS); do \
		install -m 0644 completions/$$p.bash $(BASHDIR)/$$p; \
		install -m 0644 completions/_$$p $(ZSHDIR)/_$$p; \
		install -m 0644 completions/$$p.fish $(FISHDIR)/$$p.fish; \
	done

uninstall:
	for p in $(PROGRAMS); do \
		rm -f $(BINDIR)/$$p $(BASHDIR)/$$p $(ZSHDIR)/_$$p $(FISHDIR)/$$p.fish; \
	done
	rm -f $(MANDIR)/man1/tcpipctl.1 $(MANDIR)/man8/tcpipd.8 $(MANDIR)/man8/tcpiprecvd.8

clean:
	rm -rf .build
