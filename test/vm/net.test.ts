// shared/net's netns tests again inside the test VM: its Debian kernel can create dummy links,
// which the dev/CI host kernel cannot, so the dummy-link case runs for real here.
import '../integration/shared/net/netns.test.ts';
