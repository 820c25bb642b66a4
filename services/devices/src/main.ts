/** Device simulator: composition root (config → state → servers → signals). */
import { helpRequested, printHelp, onShutdownSignal, runMain, announceListening, createLogger } from '@flatline/platform';
import { DEVICES_ENV, loadConfig } from './config.ts';
import { startSimulator } from './simulator.ts';

const NAME = 'flatline-devices';

runMain(NAME, async () => {
  if (helpRequested()) {
    return printHelp(
      NAME,
      'Simulates the meters of many flats: GET /flat/<ID>/measurements/ over HTTPS with HTTP Basic auth, readings numbered per device (seq).\n' +
        'GET /flat/<ID>/metrics serves the same readings in the Prometheus text format (for the polling benchmark).\n' +
        'A loopback control port makes chosen flats answer like a broken device (PUT /behaviours/<ID> {"mode": …}).',
      DEVICES_ENV,
    );
  }
  const config = loadConfig();
  const logger = createLogger(NAME, config.logLevel);
  const simulator = await startSimulator(config, logger);
  announceListening(logger, { https: simulator.https, control: simulator.control, metrics: simulator.metrics, flats: simulator.flats });
  onShutdownSignal(logger, () => simulator.close());
});
