/** A handler that holds requests until the test lets them go. */
import type { Handler } from "../../lib/http/handler.ts";

/** A handler whose "/hold" requests wait until `open()` is called; others answer their path. */
export function gate(): { handler: Handler; open: () => void } {
  let open!: () => void;
  const opened = new Promise<void>((r) => open = r);
  return {
    open,
    handler: async (req) => {
      if (req.path === "/hold") await opened;
      return { status: 200, body: req.path };
    },
  };
}
