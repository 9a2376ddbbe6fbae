// Loaded into a keyrelay process by bench/profile.js (NODE_OPTIONS=--import): the first SIGUSR2
// starts the V8 sampling profiler, the second writes the profile to $KEYRELAY_PROFILE_DIR. Only
// the measured window is profiled, not start-up and warm-up. Nothing of it is in keyrelay itself.
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';

const session = new Session();
session.connect();
session.post('Profiler.enable');
session.post('Profiler.setSamplingInterval', { interval: 200 });
let running = false;
process.on('SIGUSR2', () => {
  if (!running) {
    running = true;
    session.post('Profiler.start');
    return;
  }
  running = false;
  session.post('Profiler.stop', (err, result) => {
    if (err) return;
    writeFileSync(join(process.env.KEYRELAY_PROFILE_DIR ?? '.', `keyrelay-${process.pid}.cpuprofile`), JSON.stringify(result.profile));
  });
});
