// Pages without content of their own (403): the header, the live stream and the red banner.
import {start} from '/static/app.js';

start();
