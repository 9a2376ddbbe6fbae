// `keyrelay serve` in a process of its own, as the command runs it: settings from the
// environment, workers when KEYRELAY_WORKERS says so, signals handled by serve().
import './child-answer-tap.js';
import { serve } from '../../src/server.js';

await serve();
