# tcpipctl: build, test, demo, install.
#   make demo                       hub, receiver and sender with their own keys, TLS on loopback: a message, files
#   make test                       the test command CI runs
#   make install PREFIX=/usr/local DESTDIR=/tmp/stage
#   make docs                       regenerate man/ and completions/ from the command definitions
#   make check-units                systemd-analyze verify and security on the installed units (builds nothing)
#
# make install puts, under $(DESTDIR)$(PREFIX):
#   bin/tcpipd, bin/tcpipctl, bin/tcpiprecvd                 stripped (install -s, with $(STRIP))
#   share/man/man1, share/man/man8                           tcpipctl.1, tcpipd.8, tcpiprecvd.8
#   share/bash-completion, share/zsh, share/fish             completions
#   lib/systemd/system/tcpipd.service, tcpiprecvd.service    from contrib/, their ExecStart naming $(PREFIX)/bin
#   lib/sysusers.d/tcpip.conf                                the service user and group tcpip (contrib/tcpip.sysusers)
#   lib/tmpfiles.d/tcpip.conf                                /etc/tcpip, the spool, the state directories
# The systemd files go under $(PREFIX)/lib whatever PREFIX is: systemd reads units, sysusers.d and tmpfiles.d from
# /usr/local/lib/... as well as /usr/lib/..., so PREFIX=/usr/local and PREFIX=/usr both work as they are. Set
# UNITDIR, SYSUSERSDIR or TMPFILESDIR for another layout. Only DESTDIR is left out of the units' ExecStart paths.
# Nothing is started or created at install time (packages do that in their scripts); as root, afterwards:
#   systemd-sysusers && systemd-tmpfiles --create tcpip.conf && systemctl daemon-reload
# make uninstall removes exactly the files make install wrote (same PREFIX and DESTDIR); directories, the user, the
# spool, the state directories and /etc/tcpip stay.

PREFIX ?= /usr/local
DESTDIR ?=
BINDIR = $(DESTDIR)$(PREFIX)/bin
MANDIR = $(DESTDIR)$(PREFIX)/share/man
BASHDIR = $(DESTDIR)$(PREFIX)/share/bash-completion/completions
ZSHDIR = $(DESTDIR)$(PREFIX)/share/zsh/site-functions
FISHDIR = $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
UNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
UNITS = tcpipd.service tcpiprecvd.service
STRIP ?= strip
PROGRAMS = tcpipd tcpipctl tcpiprecvd
SWIFT ?= swift
# CONFIG=debug installs the debug build; NOBUILD=1 installs what is already built.
CONFIG ?= release

.PHONY: all build debug release test demo install install-bin install-man install-completions install-systemd \
	uninstall docs check-docs check-units clean

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

check-units:
	scripts/check-units

install: install-bin install-man install-completions install-systemd

# Stripped: about 34 MB instead of 95 MB per release binary. A stripped binary runs the same; only a crash's
# backtrace loses its function names.
install-bin: $(if $(NOBUILD),,$(CONFIG))
	install -d $(BINDIR)
	for p in $(PROGRAMS); do install -s --strip-program=$(STRIP) -m 0755 .build/$(CONFIG)/$$p $(BINDIR)/$$p; done

install-man:
	install -d $(MANDIR)/man1 $(MANDIR)/man8
	install -m 0644 man/tcpipctl.1 $(MANDIR)/man1/tcpipctl.1
	install -m 0644 man/tcpipd.8 $(MANDIR)/man8/tcpipd.8
	install -m 0644 man/tcpiprecvd.8 $(MANDIR)/man8/tcpiprecvd.8

install-completions:
	install -d $(BASHDIR) $(ZSHDIR) $(FISHDIR)
	for p in $(PROGRAMS); do \
		install -m 0644 completions/$$p.bash $(BASHDIR)/$$p; \
		install -m 0644 completions/_$$p $(ZSHDIR)/_$$p; \
		install -m 0644 completions/$$p.fish $(FISHDIR)/$$p.fish; \
	done

# The committed units name /usr/local/bin (so they verify and work as they are for the default PREFIX); the installed
# ones name $(PREFIX)/bin. (A PREFIX containing | or & would need escaping here.)
install-systemd:
	install -d $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(TMPFILESDIR)
	for u in $(UNITS); do \
		sed 's|/usr/local/bin/|$(PREFIX)/bin/|g' contrib/$$u > $(DESTDIR)$(UNITDIR)/$$u.tmp && \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$$u.tmp && mv -f $(DESTDIR)$(UNITDIR)/$$u.tmp $(DESTDIR)$(UNITDIR)/$$u; \
	done
	install -m 0644 contrib/tcpip.sysusers $(DESTDIR)$(SYSUSERSDIR)/tcpip.conf
	install -m 0644 contrib/tcpip.tmpfiles $(DESTDIR)$(TMPFILESDIR)/tcpip.conf

uninstall:
	for p in $(PROGRAMS); do \
		rm -f $(BINDIR)/$$p $(BASHDIR)/$$p $(ZSHDIR)/_$$p $(FISHDIR)/$$p.fish; \
	done
	rm -f $(MANDIR)/man1/tcpipctl.1 $(MANDIR)/man8/tcpipd.8 $(MANDIR)/man8/tcpiprecvd.8
	for u in $(UNITS); do rm -f $(DESTDIR)$(UNITDIR)/$$u; done
	rm -f $(DESTDIR)$(SYSUSERSDIR)/tcpip.conf $(DESTDIR)$(TMPFILESDIR)/tcpip.conf

clean:
	rm -rf .build
