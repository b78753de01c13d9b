# etl-wsd (wsd/): the websocket relay. Also builds the C websocket client the
# wsd tests and benchmarks use (tests/wsclient/), as $(BUILD)/wsclient, and
# tcpfloor: test tools, so part of `all` but not of PROGS (not installed).
WSD_SRCS := $(sort $(wildcard wsd/*.c))
WSD_OBJS := $(WSD_SRCS:%.c=$(BUILD)/%.o)

$(BUILD)/etl-wsd: $(WSD_OBJS) $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $(WSD_OBJS) $(LIB) $(PKG_LIBS) -lpthread

PROGS += $(BUILD)/etl-wsd

WSCLIENT_OBJS := $(BUILD)/tests/wsclient/wsclient.o

$(BUILD)/wsclient: $(WSCLIENT_OBJS)
	$(CC) $(ALL_LDFLAGS) -o $@ $(WSCLIENT_OBJS) $(PKG_LIBS)

all: $(BUILD)/wsclient

# tcpfloor: the loopback TCP cost of one small send and receive without lws,
# the reference under etl-wsd's CPU per send in bench/wsd_bench.py.
$(BUILD)/tcpfloor: $(BUILD)/tests/wsclient/tcpfloor.o
	$(CC) $(ALL_LDFLAGS) -o $@ $(BUILD)/tests/wsclient/tcpfloor.o

all: $(BUILD)/tcpfloor
