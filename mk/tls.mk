# tls.mk - lepoll.tls links OpenSSL 3 (Debian: libssl-dev); the host program
# and liblepoll take it too (MODLIBS_tls, see the Makefile).
MODLIBS_tls := $(shell $(PKG_CONFIG) --libs openssl 2>/dev/null || echo -lssl -lcrypto)
