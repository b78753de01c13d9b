# etl-api: the REST API as a FastCGI (and CGI) program.
API_SRCS := $(sort $(wildcard fcgi/*.c))
API_OBJS := $(API_SRCS:%.c=$(BUILD)/%.o)

# etl-api is linked wholly statically, libc included, when the libraries are
# (STATIC_DEPS=1) and no sanitizer is on (API_STATIC, GNUmakefile: the
# flag, or 0). Its
# target is under 4 MB of RSS per process, and the kernel maps nearly every
# page of a program's text when it starts (1.9 of its 2.0 MB before the
# first request): shared, libc, libm and ld.so added 2.0 MB to a 1.5 MB
# program; linked in, only the parts of them it calls come, 1.0 MB.
# bench/api.sh, 2 rounds: RSS 4.6 against 5.7 MB, CPU per enqueue 102-108
# against 109-110 us. As a static PIE, so that the program that parses the
# requests keeps its address randomisation (2 rounds: RSS 0.04-0.15 MB more
# than a plain static link, CPU the same). glibc warns at the link that
# getaddrinfo, gethostbyname and dlopen need its shared libraries at run
# time: name sources other than files and dns (built in) are loaded from
# the host's glibc, which must then be the same version (README,
# "Linking"); dlopen is also SQLite's load_extension, never called.
ifneq ($(API_STATIC),0)
API_LINK := $(API_STATIC) $(API_LIBS)
else
API_LINK := -Wl,--as-needed $(DEP_LIBS) $(FCGI_LIBS) -lm
endif

$(BUILD)/etl-api: $(API_OBJS) $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $(API_OBJS) $(LIB) $(API_LINK)

PROGS += $(BUILD)/etl-api

# The same objects with the shared libc, for valgrind, which cannot see the
# heap of a static program (test_api_valgrind.py). Part of `all`, so that
# every build directory can run the tests.
$(BUILD)/tests/etl-api-dynamic: $(API_OBJS) $(LIB) $(LINK_STAMP)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -Wl,--as-needed -o $@ $(API_OBJS) $(LIB) $(DEP_LIBS) $(FCGI_LIBS) -lm

all: $(BUILD)/tests/etl-api-dynamic

# The trivial responder of bench/api.sh (needs libfcgi, which the generic
# bench rule does not link): an explicit rule wins over bench's pattern.
# Linked as etl-api is, so that the ceiling is fair.
$(BUILD)/bench/fcgi_echo: $(BUILD)/bench/fcgi_echo.o
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(if $(filter-out 0,$(API_STATIC)),$(API_STATIC) $(API_LIBS),$(FCGI_LIBS))
