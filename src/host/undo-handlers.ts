// Imports every feature module that registers an undo handler, so `down` can take back all of them.
import "./uplink.js";
import "./hosts-file.js";
import "./firewall.js";
