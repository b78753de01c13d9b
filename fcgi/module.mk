# etl-api: the REST API as a FastCGI (and CGI) program.
API_SRCS := $(sort $(wildcard fcgi/*.c))
API_OBJS := $(API_SRCS:%.c=$(BUILD)/%.o)

# etl-api is linked wholly statically, libc included, when the libraries are
# (STATIC_DEPS=1) and no sanitizer is on (API_STATIC, GNUmakefile): its
# target is under 4 MB of RSS, and the shared libc, libm and ld.so were 2.0
# MB of its 5.7. A static PIE, so that the program that parses the requests
# keeps its address randomisation. glibc warns at the link that
# getaddrinfo, gethostbyname and dlopen need its shared libraries at run
# time: name sources other than files and dns (built in) come from the
# host's glibc, which must then be the same version; dlopen is also
# SQLite's load_extension, never called. README, "Linking", has the
# numbers and the costs.
API_DYNAMIC_LINK := -Wl,--as-needed $(DEP_LIBS) $(FCGI_LIBS) -lm
API_LINK := $(if $(API_STATIC),$(API_STATIC) $(API_LIBS),$(API_DYNAMIC_LINK))

$(BUILD)/etl-api: $(API_OBJS) $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $(API_OBJS) $(LIB) $(API_LINK)

PROGS += $(BUILD)/etl-api

# The same objects with the shared libc, for valgrind, which cannot see the
# heap of a static program (test_api_valgrind.py). Part of `all`, so that
# every build directory can run the tests.
$(BUILD)/tests/etl-api-dynamic: $(API_OBJS) $(LIB) $(LINK_STAMP)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $(API_OBJS) $(LIB) $(API_DYNAMIC_LINK)

all: $(BUILD)/tests/etl-api-dynamic

# The trivial responder of bench/api.sh (needs libfcgi, which the generic
# bench rule does not link): an explicit rule wins over bench's pattern.
# Linked as etl-api is, so that the ceiling is fair (the libraries it does
# not call add nothing: static archives give only what is called, and
# --as-needed drops unneeded shared ones).
$(BUILD)/bench/fcgi_echo: $(BUILD)/bench/fcgi_echo.o
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(API_LINK)
