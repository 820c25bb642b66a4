/** The polling and http-floor bench suites without running them: plans, configuration they write, parsers of what tools answer. */
import { expect } from 'chai';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '@flatline/stack';
import { httpFloorFigures, httpFloorPlan, httpFloorSuite, parseWrkSummary, wrkScript, fileSdTargets, instantValue, pollingFigures, pollingPlan, pollingSuite, prometheusConfig, type RepeatResult, type SideResult } from '@flatline/bench';

const ctx = (quick: boolean) => ({ quick, keep: false, say: () => {} });

describe('bench suites: polling and http-floor (not run here)', () => {
  /** The installer a plan names for its tool exists (tools/install-<tool>.sh), so the hint it prints works. */
  const expectInstaller = (tool: string) => expect(existsSync(join(REPO_ROOT, 'tools', `install-${tool}.sh`)), `tools/install-${tool}.sh`).to.equal(true);

  it('http-floor plan() names wrk, the two paths it loads and the figures name, and the plan\'s numbers', () => {
    for (const quick of [true, false]) {
      const text = httpFloorSuite.plan(ctx(quick));
      const m = /^wrk -t(\d+) -c(\d+) for (\d+) s each on (\S+) and (\S+), cycling over (\d+) flats with their own credentials; installs wrk \(tools\/install\.sh (\S+)\) when missing$/.exec(text);
      expect(m, `quick=${quick}: ${text}`).to.not.equal(null);
      const [, threads, connections, seconds, path1, path2, flats, installer] = m!;
      const plan = httpFloorPlan(quick);
      expect({ threads: +threads!, connections: +connections!, seconds: +seconds!, flats: +flats! }, `quick=${quick}`).to.deep.equal({
        threads: plan.threads,
        connections: plan.connections,
        seconds: plan.seconds,
        flats: plan.flats,
      });
      expect([path1, path2]).to.deep.equal(['/flat/<ID>/measurements/', '/flat/<ID>/metrics']);
      expectInstaller(installer!);
      // Each path it says it loads is a figure of the run, measured with the connections it says.
      const summary = { requests: 1, durationUs: 1, errors: { connect: 0, read: 0, write: 0, status: 0, timeout: 0 }, p50Us: 1, p99Us: 1, maxUs: 1 };
      const figures = httpFloorFigures([path1!, path2!].map((path) => ({ path, summary, simulatorCpuS: 1 })), plan);
      expect(figures.map((f) => f.name)).to.deep.equal([path1, path2].map((p) => `simulator requests/s (wrk, ${plan.connections} connections), ${p}`));
    }
  });

  it('polling plan() names its peer (Prometheus), its sizes, repeats and windows, and the figures follow them', () => {
    for (const quick of [true, false]) {
      const text = pollingSuite.plan(ctx(quick));
      const m = /^flats ([\d, ]+) × (\d+) repeat\(s\); interval (\d+) s; a reading per device every (\d+) s; window (\d+) s after warm-up, flatline \(one ingestion replica\) then (Prometheus) \(file_sd, https, one shared credential\); installs Prometheus \(tools\/install\.sh (\S+)\) when missing$/.exec(text);
      expect(m, `quick=${quick}: ${text}`).to.not.equal(null);
      const [, flats, repeats, interval, period, window, peer, installer] = m!;
      const plan = pollingPlan(quick);
      expect({ flats: flats!.split(', ').map(Number), repeats: +repeats!, intervalMs: +interval! * 1000, devicePeriodMs: +period! * 1000, windowMs: +window! * 1000 }, `quick=${quick}`).to.deep.equal({
        flats: plan.flats,
        repeats: plan.repeats,
        intervalMs: plan.intervalMs,
        devicePeriodMs: plan.devicePeriodMs,
        windowMs: plan.windowMs,
      });
      expect(peer).to.equal('Prometheus');
      expectInstaller(installer!);
      // Four figures per planned size and repeat (CPU per poll, stack CPU, RSS, polls completed), each naming its size and repeat.
      const side: SideResult = { completed: 1, attempts: 1, windowS: 1, cpuS: 1, devicesCpuS: 1, rssMaxBytes: 1, meanDurationS: 1 };
      const runs: RepeatResult[] = plan.flats.flatMap((f) => Array.from({ length: plan.repeats }, (_, i) => ({ flats: f, repeat: i + 1, flatline: side, prometheus: side, errors: [] })));
      const names = pollingFigures(runs, plan.intervalMs).map((f) => f.name);
      expect(names, names.join('\n')).to.have.length(4 * runs.length);
      for (const r of runs) expect(names.filter((n) => n.includes(`${r.flats} flats (repeat ${r.repeat})`)), `${r.flats} flats, repeat ${r.repeat}`).to.have.length(4);
    }
    expect(pollingSuite.name).to.equal('polling');
    expect(httpFloorSuite.name).to.equal('http-floor');
  });

  it('plans quick runs small and full runs as the issue asks', () => {
    expect(pollingPlan(true)).to.deep.include({ flats: [200], repeats: 1, windowMs: 20_000, intervalMs: 5000, devicePeriodMs: 5000 });
    expect(pollingPlan(false)).to.deep.include({ flats: [1000, 10_000], repeats: 3, windowMs: 30_000 });
    expect(httpFloorPlan(true).seconds).to.equal(3);
    expect(httpFloorPlan(false).seconds).to.equal(10);
  });

  describe('Prometheus', () => {
    it('reads the value of an instant vector, 0 for an empty one, a scalar too', () => {
      expect(instantValue({ status: 'success', data: { resultType: 'vector', result: [{ metric: {}, value: [1764412345.678, '1234'] }] } })).to.equal(1234);
      expect(instantValue({ status: 'success', data: { resultType: 'vector', result: [] } })).to.equal(0);
      expect(instantValue({ status: 'success', data: { resultType: 'scalar', result: [1764412345.678, '2.5'] } })).to.equal(2.5);
    });

    it('refuses an error answer, a matrix, and what is not an object, saying why', () => {
      expect(() => instantValue({ status: 'error', errorType: 'bad_data', error: 'parse error at char 5' })).to.throw(/parse error at char 5/);
      expect(() => instantValue({ status: 'success', data: { resultType: 'matrix', result: [] } })).to.throw(/matrix, not a vector/);
      expect(() => instantValue(null)).to.throw(/not JSON object/);
    });

    it('configures one https job with the shared credential from a file, the CA, and each flat\'s path by relabelling', () => {
      const config = JSON.parse(prometheusConfig({ intervalMs: 5000, caFile: '/s/ca.pem', user: 'prometheus', passwordFile: '/s/pw', targetsFile: '/s/flats.json' })) as {
        global: Record<string, string>;
        scrape_configs: Array<Record<string, unknown>>;
      };
      expect(config.global).to.deep.equal({ scrape_interval: '5s', scrape_timeout: '2s' });
      const job = config.scrape_configs[0]!;
      expect(job).to.deep.include({ scheme: 'https', tls_config: { ca_file: '/s/ca.pem' }, basic_auth: { username: 'prometheus', password_file: '/s/pw' } });
      expect(job['relabel_configs']).to.deep.equal([{ source_labels: ['flat'], regex: '(.+)', target_label: '__metrics_path__', replacement: '/flat/${1}/metrics' }]);
      expect(JSON.stringify(config)).not.to.match(/password"/);
    });

    it('lists every flat as a target of the simulator with its flat label', () => {
      expect(JSON.parse(fileSdTargets('127.0.0.1:8443', ['1', '2']))).to.deep.equal([
        { targets: ['127.0.0.1:8443'], labels: { flat: '1' } },
        { targets: ['127.0.0.1:8443'], labels: { flat: '2' } },
      ]);
    });
  });

  describe('figures', () => {
    const side = (o: Partial<SideResult>): SideResult => ({ completed: 6000, attempts: 6000, windowS: 30, cpuS: 3, devicesCpuS: 1, rssMaxBytes: 100 * 2 ** 20, meanDurationS: 0.01, ...o });

    it('compares per repeat: CPU per poll with its ratio and goal, stack CPU, RSS (goal at 10,000 flats), completed per interval', () => {
      const r: RepeatResult = { flats: 10_000, repeat: 2, flatline: side({ cpuS: 6, stackCpuS: 18, rssMaxBytes: 120 * 2 ** 20 }), prometheus: side({ cpuS: 3, rssMaxBytes: 400 * 2 ** 20 }), errors: [] };
      const [cpu, stack, rss, done] = pollingFigures([r], 5000);
      expect(cpu).to.deep.include({ flatline: '1.000 ms', versus: '0.500 ms', ratio: 2, goal: '≤ 1.0× Prometheus', met: false });
      expect(cpu!.name).to.include('10000 flats (repeat 2)');
      expect(stack).to.deep.include({ flatline: '3.000 ms', ratio: 6 });
      expect(stack!.goal).to.equal(undefined);
      expect(rss).to.deep.include({ flatline: '120 MB', versus: '400 MB', met: true });
      expect(done).to.deep.include({ flatline: '1000 of 10000', versus: '1000 of 10000', ratio: 1 });
    });

    it('says so when a poller burnt CPU and completed nothing (a collapse), and gives no verdict', () => {
      const [cpu, stack] = pollingFigures([{ flats: 1000, repeat: 3, flatline: side({ completed: 0, cpuS: 12.34, stackCpuS: 20 }), prometheus: side({}), errors: [] }], 5000);
      expect(cpu).to.deep.include({ flatline: '12.3 s CPU, no poll completed', ratio: undefined, met: undefined });
      expect(stack!.flatline).to.equal('20.0 s CPU, no poll completed');
    });

    it('shows n/a and no verdict for a side that failed', () => {
      const [cpu, , rss] = pollingFigures([{ flats: 10_000, repeat: 1, flatline: side({}), errors: ['prometheus: exited'] }], 5000);
      expect(cpu).to.deep.include({ versus: 'n/a', ratio: undefined, met: undefined });
      expect(rss!.goal).to.equal('ingestion ≤ 150 MB');
    });
  });

  describe('wrk', () => {
    it('reads the summary line of our Lua script among wrk\'s own output', () => {
      const out = [
        'Running 3s test @ https://127.0.0.1:40000',
        '  1 threads and 8 connections',
        'FLATLINE_WRK {"requests":9000,"durationUs":3000000,"errors":{"connect":0,"read":0,"write":0,"status":2,"timeout":0},"p50Us":800,"p99Us":4100,"maxUs":9000}',
        'Requests/sec:   3000.00',
      ].join('\n');
      const s = parseWrkSummary(out);
      expect(s).to.deep.include({ requests: 9000, durationUs: 3_000_000, p50Us: 800, p99Us: 4100 });
      expect(s.errors.status).to.equal(2);
      const [figure] = httpFloorFigures([{ path: '/flat/<ID>/measurements/', summary: s, simulatorCpuS: 2 }], httpFloorPlan(false));
      expect(figure).to.deep.include({ flatline: '3000 /s', ratio: 1.5, goal: '≥ 2× the polling load', met: false });
      expect(figure!.versus).to.include('2000 /s');
    });

    it('fails clearly when wrk printed no summary (the script did not run)', () => {
      expect(() => parseWrkSummary('unable to connect to 127.0.0.1:1 Connection refused')).to.throw(/no summary line.*\n.*Connection refused/);
    });

    it('writes a script that cycles over each flat\'s path with its Authorization header', () => {
      const lua = wrkScript([
        { path: '/flat/1/measurements/', authorization: 'Basic Zmxh' },
        { path: '/flat/2/measurements/', authorization: 'Basic "x\\' },
      ]);
      expect(lua).to.include('{"/flat/1/measurements/","Basic Zmxh"}').and.include('{"/flat/2/measurements/","Basic \\"x\\\\"}');
      expect(lua).to.match(/function request\(\)/).and.match(/function done\(summary, latency, requests\)/);
    });
  });
});
